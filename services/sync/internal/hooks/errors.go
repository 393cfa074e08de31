package hooks

import "errors"

// Sentinel errors of the package, checked with errors.Is.
var (
	// ErrMalformed is returned by Parse for a body that is not JSON or not
	// an Okta event hook delivery.
	ErrMalformed = errors.New("not an Okta event hook delivery")
	// ErrClosed is returned by a Coalescer's Submit after Close.
	ErrClosed = errors.New("coalescer closed")
	// ErrHandoff is returned by a Coalescer's Submit when the handoff that
	// was to cover the work failed or was never confirmed: the caller must
	// submit the work again later (the intake naks the delivery).
	ErrHandoff = errors.New("handoff of coalesced targets failed")
)
