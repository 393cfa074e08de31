package bus

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the bus, checked with errors.Is.
var (
	// ErrPermanent marks a handler failure that no retry can fix: the message is
	// terminated and copied to the dead-letter stream with the reason.
	ErrPermanent = errors.New("permanent failure")
	// ErrUndecodable marks a payload that cannot be decoded into the expected type.
	ErrUndecodable = errors.New("undecodable payload")
	// ErrStreamConflict is returned when a declared stream differs from the
	// existing one in a setting that cannot be changed in place.
	ErrStreamConflict = errors.New("stream conflicts with its declaration")
	// ErrConsumerConflict is returned when a declared consumer differs from the
	// existing one in a setting that cannot be changed in place.
	ErrConsumerConflict = errors.New("consumer conflicts with its declaration")
	// ErrInvalidSubject is returned for a subject that is empty or holds wildcards
	// where a concrete subject is required.
	ErrInvalidSubject = errors.New("invalid subject")
)

// Permanent wraps err so that the consumer terminates the message and sends it
// to the dead-letter stream instead of retrying it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: ErrPermanent}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err was marked permanent (or undecodable).
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, ErrUndecodable)
}

type classified struct {
	err   error
	class error
}

func (c *classified) Error() string { return c.err.Error() }

func (c *classified) Unwrap() []error { return []error{c.err, c.class} }

// RetryAfter wraps err so that the consumer hands the message back to be
// delivered again after d, instead of after its spec's growing retry delay:
// for a handler that knows when trying again makes sense (a resource busy
// for a short while).
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfter{err: err, after: d}
}

type retryAfter struct {
	err   error
	after time.Duration
}

func (r *retryAfter) Error() string { return r.err.Error() }

func (r *retryAfter) Unwrap() error { return r.err }

// RetryDelay returns the delay RetryAfter set on err (or on an error it
// wraps), if any: what the consumer waits before delivering the message
// again.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfter
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}
