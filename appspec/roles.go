package appspec

import (
	"fmt"
	"strings"
)

// Unreserved is the role of unreserved resources in acceptedResourceRoles.
const Unreserved = "*"

// validateRoles checks role, acceptedResourceRoles and gpus against the
// server: Marathon ≥ 1.9 allows an app only the framework's role
// (--mesos_role; Flotilla has no group roles, enforceRole is refused), and
// acceptedResourceRoles only "*" and that role, because Mesos offers a
// framework no resources reserved to a role it is not subscribed with.
func (a *App) validateRoles(v *ValidationError, l Limits) {
	fw := l.Role
	if fw == "" {
		fw = Unreserved
	}
	role := a.Role
	if role == "" {
		role = fw
	} else if role != fw {
		v.addf("/role", "got %q, expected one of: [%s] (the framework's role, --mesos-role)", a.Role, fw)
	}
	for i, r := range a.AcceptedResourceRoles {
		if err := checkRoleName(r); err != "" {
			v.addf(fmt.Sprintf("/acceptedResourceRoles/%d", i), "%s", err)
		}
	}
	allowed := []string{Unreserved}
	if role != Unreserved {
		allowed = append(allowed, role)
	}
	for _, r := range a.AcceptedResourceRoles {
		if r != Unreserved && r != role {
			v.addf("/acceptedResourceRoles", "acceptedResourceRoles can only contain %s (got %q): Flotilla subscribes to Mesos with role %q, and Mesos offers no resources reserved to other roles",
				strings.Join(allowed, " and "), r, fw)
			break
		}
	}
	if a.GPUs > 0 {
		if a.Container != nil && !strings.EqualFold(a.Container.Type, "MESOS") {
			v.add("/", "GPU resources only work with the Mesos containerizer")
		}
		if !l.GPUResources {
			v.add("/", "Feature gpu_resources is not enabled. Enable with --enable-features gpu_resources")
		}
	}
}

// checkRoleName is Marathon's ResourceRole.validResourceRole (Mesos's
// roles::validate): the message, or "" when name is a valid role.
func checkRoleName(name string) string {
	switch name {
	case "":
		return `A role name must not be "".`
	case ".":
		return `A role name must not be ".".`
	case "..":
		return `A role name must not be "..".`
	}
	if strings.HasPrefix(name, "-") {
		return "A role name must not start with a '-'."
	}
	for _, c := range name {
		switch c {
		case '\t':
			return `A role name must not include a horizontal tab (\x09) character.`
		case '\n':
			return `A role name must not include a line feed (\x0a) character.`
		case '\v':
			return `A role name must not include a vertical tab (\x0b) character.`
		case '\f':
			return `A role name must not include a form feed (\x0c) character.`
		case '\r':
			return `A role name must not include a carriage return (\x0d) character.`
		case ' ':
			return `A role name must not include a space (\x20) character.`
		case '/':
			return `A role name must not include a slash (\x2f) character.`
		case '\x7f':
			return `A role name must not include a backspace (\x7f) character.`
		}
	}
	return ""
}
