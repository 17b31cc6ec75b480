// Package health runs the health checks Marathon ran from the scheduler:
// HTTP, HTTPS and TCP. (COMMAND and MESOS_* checks go to Mesos with the
// task, one per task; their results arrive as status updates and the
// framework records them itself.) Every such check of every running task
// is probed from the leader against the task's host and host port
// (portIndex, or port) every intervalSeconds, the first delaySeconds after
// the task started running, with Marathon's rules (HealthCheckWorker and
// HealthCheckActor):
//
//   - HTTP(S): an answer with status 200-399 is healthy (redirects are not
//     followed); 100-199 is ignored for HTTP when ignoreHttp1xx is set;
//     anything else, or no answer within timeoutSeconds, is a failure.
//     HTTPS certificates are not verified.
//   - TCP: a connection accepted within timeoutSeconds is healthy.
//   - A failure before the check's first success and within
//     gracePeriodSeconds of the task's start is ignored.
//   - A failure that comes when maxConsecutiveFailures failures in a row
//     are already recorded gets the task killed (and so replaced);
//     maxConsecutiveFailures 0 never kills.
//
// Each result is reported to the scheduler (framework.Scheduler.
// ReportHealth), which keeps every check's record on the task
// (Task.Checks, the API's healthCheckResults) and decides the task's
// health from all of them; kills go through Scheduler.KillUnhealthy, which
// publishes the event. The decisions (what to probe when, what a result
// means, when to kill) are a pure tracker stepped on an injected clock;
// the probes are the I/O edge. Only the leader probes: the platform runs a
// Checker within each leadership term, like package readiness's.
package health
