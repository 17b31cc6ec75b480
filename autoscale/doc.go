// Package autoscale scales apps on their tasks' metrics, inside the leader,
// and explains every decision.
//
// It owns metric collection (Sources: cpu and mem from the agents'
// /monitor/statistics, rps from the gateway, a Prometheus metric scraped
// from the tasks), the policy (Decide: Kubernetes HPA's target tracking
// with tolerance, stabilisation windows, max step, min/max and a cooldown
// after deployments; a pure function of config, state, input and time)
// and a Runner that evaluates each autoscaled app at its interval and
// keeps a bounded decision log per app. It never changes instances except
// through the Scaler it is given, which is the API's scale path, so every
// change is a normal deployment.
//
//	cpu, _ := autoscale.NewAgentSource(appspec.AutoscaleCPU, agentURL, nil, 0)
//	mem, _ := autoscale.NewAgentSource(appspec.AutoscaleMem, agentURL, nil, 0)
//	r, err := autoscale.NewRunner(autoscale.RunnerConfig{
//		Clock:    clock.Real{},
//		Snapshot: sched.SnapshotByApp,
//		Scaler:   deployScaler, // Scale(ctx, appID, n) error: deploy.Service.Scale
//		Sources: map[string]autoscale.Source{
//			appspec.AutoscaleCPU: cpu, appspec.AutoscaleMem: mem,
//			appspec.AutoscaleRPS:        autoscale.RPSSource{Rates: gw},
//			appspec.AutoscalePrometheus: autoscale.NewPromSource(nil, 0),
//		},
//		Log: logging.Component(log, "autoscale"),
//	})
//	go r.Run(leaderCtx) // cancel when leadership is lost
//	decisions := r.Log("/web") // GET /v2/apps/{id}/autoscale
//
// Missing, partial or stale metrics never shrink an app: a decision holds
// and names the rule that held it (RuleMissing, RuleStale …).
package autoscale
