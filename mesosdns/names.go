package mesosdns

import (
	"crypto/sha1"
	"strings"
)

// label turns a Mesos name into one RFC 1123 label exactly as Mesos-DNS does
// (records/labels RFC1123), so clients moving from Mesos-DNS find the same
// names: lowercase, '.' and '_' become '-', other characters vanish, at most
// 63 bytes, no leading or trailing '-'.
func label(name string) string {
	const maxLen = 63
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+('a'-'A'))
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c == '-' || c == '.' || c == '_':
			b = append(b, '-')
		}
	}
	trim := []byte(strings.TrimLeft(string(b), "-"))
	size := min(len(trim), maxLen)
	head := []byte(strings.TrimRight(string(trim[:size]), "-"))
	if len(head) == size {
		return string(head)
	}
	// Mesos-DNS refills the room freed by trimming from what was cut off, so
	// long names keep as much of their text as fits.
	tail := strings.TrimLeft(string(trim[size:]), "-")
	if len(tail) > 0 {
		head = append(head, tail[:min(len(tail), size-len(head))]...)
	}
	return strings.TrimRight(string(head), "-")
}

// domainFrag sanitises a dotted name (a framework name) label by label,
// dropping labels that end up empty, like Mesos-DNS's labels.DomainFrag.
func domainFrag(name string) string {
	var out []string
	for _, part := range strings.Split(name, ".") {
		if l := label(part); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, ".")
}

// zbase32 is the human-oriented base-32 alphabet Mesos-DNS uses for the task
// id hash in canonical names.
const zbase32 = "ybndrfg8ejkmcpqxot1uwisza345h769"

// hashID is Mesos-DNS's hashString: the first five zbase32 characters of the
// SHA-1 of the task id, enough to tell instances of one app apart.
func hashID(id string) string {
	sum := sha1.Sum([]byte(id))
	// 25 bits, most significant first.
	v := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	var out [5]byte
	for i := range out {
		out[i] = zbase32[(v>>(27-5*uint(i)))&31]
	}
	return string(out[:])
}

// AppName is the A-record name under which the tasks named taskName are
// served: {task}.{framework}.{domain}, sanitised as the records are. The
// gateway routes the same name, so one name reaches an app both ways.
func AppName(domain, framework, taskName string) string {
	if domain == "" {
		domain = DefaultDomain
	}
	return label(taskName) + "." + domainFrag(framework) + "." + strings.TrimSuffix(domain, ".")
}
