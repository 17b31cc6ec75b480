// Package appspec is the app spec: Marathon's v2 App JSON (the subset
// DESIGN.md lists) plus Flotilla's fields (exposure, autoscale,
// progressDeadlineSeconds). It owns the types, Marathon's defaults, strict
// decoding and validation with field-precise errors in Marathon's shape, so
// the API, the store and the framework agree on one definition of an app.
// It does no I/O.
//
//	app, err := appspec.Decode(r.Body) // strict: ≤ 1 MiB, no unknown or unsupported fields
//	if err == nil {
//		err = app.ValidateWith(limits) // Limits{} or DefaultLimits(): the defaults
//	}
//	var verr *appspec.ValidationError
//	switch {
//	case errors.Is(err, appspec.ErrTooLarge): // 413
//	case errors.Is(err, appspec.ErrMalformed): // 400, body is verr
//	case errors.As(err, &verr): // 422 {"message": "Object is not valid", "details": [...]}
//	}
//
// Limits (limits.go) bound sizes and numbers: instances, ports, labels,
// env, constraints, health checks, secrets, id length, seconds. The store
// restore judges stored apps with the same ValidateWith. Limits also
// carry the server's role and features (roles.go): role,
// acceptedResourceRoles and gpus are judged against them.
//
// Persistent volumes and residency (resident.go) make an app resident;
// ResidentUpdate keeps its resources and volumes as reserved.
//
// Marathon fields Flotilla does not support (storeUrls, ipAddress,
// external volumes, a pod's persistent volumes, …) are refused naming the
// field, unless empty: Marathon's own
// GET output carries them as [] or {} and must round-trip. Status fields of
// that output (tasksRunning, versionInfo, …) are accepted and dropped.
//
// Pods (pod.go, pod_validate.go) are Marathon's pod JSON, decoded as
// strictly (DecodePod) and validated as Marathon's PodsValidation does;
// Pod.App is how the scheduler runs one, an app whose App.Pod is set.
package appspec
