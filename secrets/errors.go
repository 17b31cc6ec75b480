package secrets

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels classify every failure so the framework can show a reason and
// decide whether to retry. Test with errors.Is.
var (
	// ErrBadRef: the reference does not parse or names an undeclared secret.
	// Retrying does not help; the app spec must change.
	ErrBadRef = errors.New("secrets: bad reference")
	// ErrPermissionDenied: Vault refused Flotilla's token (policy, unknown
	// mount, or expired token). Retry with backoff; an operator must act.
	ErrPermissionDenied = errors.New("secrets: permission denied")
	// ErrNotFound: the path or the field does not exist (or the latest KV v2
	// version is deleted). Retry with backoff; someone must write the secret.
	ErrNotFound = errors.New("secrets: not found")
	// ErrUnavailable: Vault did not answer in time, is sealed or failed.
	// Retry with backoff; it clears on its own when Vault is back.
	ErrUnavailable = errors.New("secrets: vault unavailable")
)

// Error is a failure to resolve one secret. Its text names the secret and
// the reason and never contains a value, so it can reach /v2/queue and logs.
type Error struct {
	Secret string // name in the app's "secrets" (or the caller's key)
	Ref    Ref    // zero when the reference did not parse
	Kind   error  // one of the sentinels
	Reason string // for ErrBadRef, a missing field, or a refused login
	Err    error  // underlying cause, may be nil
}

func (e *Error) Error() string {
	at := e.Ref.Path
	switch {
	case e.Kind == ErrBadRef:
		return fmt.Sprintf("secret %s: %s", e.Secret, e.Reason)
	case e.Kind == ErrNotConfigured:
		return fmt.Sprintf("secret %s: %s", e.Secret, strings.TrimPrefix(ErrNotConfigured.Error(), "secrets: "))
	case e.Kind == ErrUnavailable:
		if e.Err != nil {
			return fmt.Sprintf("secret %s: vault unreachable at %s: %v", e.Secret, at, e.Err)
		}
		return fmt.Sprintf("secret %s: vault unreachable at %s", e.Secret, at)
	case e.Kind == ErrPermissionDenied && e.Reason != "":
		return fmt.Sprintf("secret %s: permission denied at %s (%s)", e.Secret, at, e.Reason)
	case e.Kind == ErrPermissionDenied:
		return fmt.Sprintf("secret %s: permission denied at %s", e.Secret, at)
	case e.Kind == ErrNotFound && e.Reason != "":
		return fmt.Sprintf("secret %s: %s at %s", e.Secret, e.Reason, at)
	case e.Kind == ErrNotFound:
		return fmt.Sprintf("secret %s: not found at %s", e.Secret, at)
	}
	return fmt.Sprintf("secret %s: %v at %s", e.Secret, e.Err, at)
}

// Unwrap exposes both the sentinel and the cause to errors.Is/As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// backendError is what a Backend returns: the sentinel plus a cause that is
// safe to show (status, Vault's own error text, a dial error).
type backendError struct {
	op    string // what Flotilla was doing, when not a plain read
	kind  error
	path  string
	cause error
}

func (e *backendError) Error() string {
	msg := "secrets: "
	if e.op != "" {
		msg += e.op + ": "
	}
	msg += strings.TrimPrefix(e.kind.Error(), "secrets: ") + " at " + e.path
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// during names the operation that failed in a backendError.
func during(op string, err error) error {
	var be *backendError
	if errors.As(err, &be) {
		c := *be
		c.op = op
		return &c
	}
	return fmt.Errorf("secrets: %s: %w", op, err)
}

func (e *backendError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// kindOf maps any error to a sentinel; unknown errors count as unavailable
// so that they are retried rather than treated as a permanent refusal.
func kindOf(err error) error {
	for _, k := range []error{ErrBadRef, ErrNotConfigured, ErrPermissionDenied, ErrNotFound, ErrUnavailable} {
		if errors.Is(err, k) {
			return k
		}
	}
	return ErrUnavailable
}

// causeOf returns what to print after "vault unreachable": the backend's
// cause without repeating the sentinel and path.
func causeOf(err error) error {
	var be *backendError
	if errors.As(err, &be) {
		return be.cause
	}
	return err
}
