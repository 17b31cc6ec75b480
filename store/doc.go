// Package store persists Flotilla's desired state: apps (with
// compare-and-set revisions and a bounded version history for rollback),
// deployments, group records, the Mesos framework id and minimal task
// records. It owns
// the Store interface, the ZooKeeper implementation used in production
// (ZK) and the in-memory one used by `flotilla dev` and unit tests
// (Memory); both pass one conformance suite.
//
// ZooKeeper holds one znode per app, never one blob for all of them
// (Marathon's single root node hit ZooKeeper's 1 MB limit, #2101); the
// layout is documented on ZK. Groups follow the same rule: a group's
// membership is implied by its apps' ids, so a group record keeps only what
// ids cannot say (its dependencies, or that it exists while empty), one
// small node per group, and no write ever rewrites the whole tree. Secret values are never stored: an App only
// carries references, and PutApp drops any value that sits next to a
// reference.
//
//	s, err := store.NewZK(ctx, store.ZKConfig{Servers: []string{"127.0.0.1:2181"}})
//	cur, err := s.GetApp(ctx, "/prod/shop/web")
//	cur.App.Instances = 5
//	_, err = s.PutApp(ctx, cur.App, cur.Revision) // errors.Is(err, store.ErrConflict) if it changed meanwhile
package store
