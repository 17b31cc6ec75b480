package framework

import (
	"fmt"
	"strings"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Accepted-roles default behaviours: which resources an app without
// acceptedResourceRoles takes (Marathon ≥ 1.9's
// --accepted_resource_roles_default_behavior).
const (
	// AcceptAny takes unreserved resources and those reserved to the
	// framework's role (Marathon's default).
	AcceptAny = "any"
	// AcceptUnreserved takes unreserved resources only ("*").
	AcceptUnreserved = "unreserved"
	// AcceptReserved takes resources reserved to the framework's role
	// only (unreserved ones when that role is "*").
	AcceptReserved = "reserved"
)

// ParseAcceptedRolesDefault checks a --accepted-resource-roles-default-behavior
// value; "" is AcceptAny.
func ParseAcceptedRolesDefault(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", AcceptAny:
		return AcceptAny, nil
	case AcceptUnreserved:
		return AcceptUnreserved, nil
	case AcceptReserved:
		return AcceptReserved, nil
	}
	return "", fmt.Errorf("want any, unreserved or reserved, got %q", v)
}

// DefaultAcceptedRolesBehavior turns Marathon's older
// --default_accepted_resource_roles (a list of "*" and the framework's
// role) into the behaviour it means.
func DefaultAcceptedRolesBehavior(roles []string, role string) (string, error) {
	if role == "" {
		role = appspec.Unreserved
	}
	star, own := false, false
	for _, r := range roles {
		switch r {
		case appspec.Unreserved:
			star = true
		case role:
			own = true
		default:
			return "", fmt.Errorf("--default-accepted-resource-roles can only contain * and %s, got %q", role, r)
		}
	}
	switch {
	case star && own, star && role == appspec.Unreserved:
		return AcceptAny, nil
	case star:
		return AcceptUnreserved, nil
	case own:
		return AcceptReserved, nil
	}
	return "", fmt.Errorf("--default-accepted-resource-roles is empty")
}

// acceptedRoles is the roles a task of app may take resources from
// (offers.Request.AcceptedRoles): the app's acceptedResourceRoles, else
// what the default behaviour says; nil is "*" and the framework's role.
func acceptedRoles(app *appspec.App, role, behavior string) []string {
	if len(app.AcceptedResourceRoles) > 0 {
		return app.AcceptedResourceRoles
	}
	if role == "" {
		role = appspec.Unreserved
	}
	switch behavior {
	case AcceptUnreserved:
		return []string{appspec.Unreserved}
	case AcceptReserved:
		return []string{role}
	}
	return nil
}
