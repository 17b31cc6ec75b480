package deploy

import (
	"github.com/flotilla-sched/flotilla/appspec"
)

// groupChanged tells the Publisher how a change of desired state went,
// as Marathon's group_change_success and group_change_failed do: every
// change (an app's or a group's) is a change of a group there, the app's
// parent for an app. Success means the change was accepted and its
// deployment started, not that the deployment succeeded (that is
// deployment_success). A change refused before it reached this package
// (bad JSON, validation) is not a group change, as in Marathon.
func (s *Service) groupChanged(groupID, version string, p *GroupPlan, err error) {
	if err != nil {
		s.events().GroupChange(groupID, version, err.Error())
		return
	}
	if p != nil {
		version = p.Version
	}
	s.events().GroupChange(groupID, version, "")
}

// appChanged is groupChanged for a change of one app.
func (s *Service) appChanged(op Op, res Result, err error) {
	version := Timestamp(s.now())
	if err == nil && res.Deployment != nil {
		version = res.Deployment.Version
	}
	gid := appspec.ParentID(op.ID)
	if err != nil {
		s.events().GroupChange(gid, version, err.Error())
		return
	}
	s.events().GroupChange(gid, version, "")
}

// groupIDs is every group that exists: the ancestors of every app and
// every group with a record.
func (s *Service) groupIDs() map[string]bool {
	out := map[string]bool{"/": true}
	for id := range s.Groups() {
		out[id] = true
	}
	for _, r := range s.idx.list() {
		for g := appspec.ParentID(r.App.ID); !out[g]; g = appspec.ParentID(g) {
			out[g] = true
		}
	}
	return out
}
