// Package readiness runs apps' readiness checks, which Mesos does not:
// Marathon ran them from the scheduler too. A task launched for an app
// with a readiness check starts not ready (framework.Task.Ready false);
// the Checker probes it with HTTP(S) GET once it runs (and passes its
// health checks, if any) every intervalSeconds until the answer's status
// is one of httpStatusCodesForReady, then tells the scheduler, which from
// then on counts the task in rolling upgrades and lets discovery announce
// it (DNS, gateway). A task is checked until it is ready once, as in
// Marathon; after that its health checks watch it.
//
// The Checker follows the scheduler's event bus, not snapshots, so it
// costs nothing per task update of apps without readiness checks. The
// decision of what to probe when (tracker) is pure and stepped on an
// injected clock; the HTTP probes are the I/O edge. Only the leader
// probes: the platform runs a Checker within each leadership term.
package readiness
