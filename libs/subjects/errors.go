package subjects

import "errors"

// Sentinel errors of the package, checked with errors.Is. The errors returned
// wrap them with what is wrong and how to fix it.
var (
	// ErrInvalidConnectorID is returned for a connector id that cannot be a
	// NATS subject token (see ValidateConnectorID).
	ErrInvalidConnectorID = errors.New("invalid connector id")
	// ErrUnknownResourceKind is returned for a ResourceKind (or kind token)
	// that has no subject, such as RESOURCE_KIND_UNSPECIFIED.
	ErrUnknownResourceKind = errors.New("unknown resource kind")
	// ErrInvalidSubject is returned for a string that is not a concrete NATS
	// subject: empty, with an empty token, whitespace or a wildcard token.
	ErrInvalidSubject = errors.New("invalid subject")
	// ErrUnknownSubject is returned by Parse for a well-formed subject that is
	// not one of the bus's subjects.
	ErrUnknownSubject = errors.New("unknown subject")
)
