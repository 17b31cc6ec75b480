// Package offers owns placement: which pending task goes on which Mesos
// offer. It is pure (no I/O, no clock, no goroutines) and deterministic:
// the same offers, requests and running tasks give the same Result.
//
// It matches resources (cpus, mem, disk, gpus, port ranges and fixed host
// ports, per reservation role), enforces Marathon's constraints (UNIQUE,
// CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS on hostname or an agent
// attribute), spreads across hosts or bin-packs, and says for every
// request left over why each offer refused it, in Marathon's
// processedOffersSummary terms. Each offer passes a chain of small checks
// (role, constraints, cpus, mem, disk, gpus, ports); the first that fails
// is the offer's reason.
//
// The framework calls it once per batch of offers:
//
//	in := make([]offers.Offer, len(ev.Offers))
//	for i := range ev.Offers {
//		in[i] = offers.FromMesos(&ev.Offers[i])
//	}
//	// pending: one Request per task to launch, Constraints from
//	// offers.ParseConstraints(app.Constraints); running: a Placed per task
//	res := offers.Place(in, pending, running, offers.Options{})
//	// accept: res.Placements (Resources ready for TaskInfo), grouped by offer
//	// decline: res.UnusedOffers
//	// /v2/queue: res.Unplaced[taskID]
package offers
