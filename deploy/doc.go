// Package deploy owns every change of desired state: app writes, the
// deployments they start, their progress, deadline and rollback, and the
// scale path the autoscaler and secret rotation use. The HTTP API (package
// api) turns requests into Ops and renders what this package holds; it
// decides nothing about apps itself.
//
// Why one package: a write touches the store, the scheduler, the app
// index and a deployment in a fixed order under one lock, and a scale
// counted in two places (once in the API, once in the scheduler) was one
// too many. Everything that changes what should run goes through
// Service.Apply; everything that judges a deployment goes through the
// Service's loop (Run), which reads the scheduler's snapshots and the
// injected clock.
//
// The order of a write (Apply): service ports are assigned (so that an
// update leaving them at 0 keeps them and is still a scale), the action is
// chosen (start, scale, restart, stop), the store is written with a
// compare-and-set on the app's revision, and only then the scheduler and
// the index change and a deployment is recorded and announced. A store
// that refuses leaves nothing half-written.
//
// Group changes (ApplyGroup: group writes, bulk app updates, a group's
// rollback) are one plan each; before one is applied, every group whose
// version moved keeps its current state as a store.GroupVersion
// (groupversions.go), which GroupAt turns back into a group definition.
// Every accepted or refused change is told to the Publisher as Marathon's
// group_change_success/failed.
//
// Restore reads the store when this replica starts leading. Items the
// store cannot decode are reported (Broken) and never lost: the app is
// neither scheduled nor deleted, and unknown tasks are not killed while
// any app is unreadable. It also subscribes to the scheduler's events for
// the term's Run (Attach), so that nothing published before Run's
// goroutine starts is missed.
package deploy
