package telemetry

import "errors"

// ErrUnknownLevel is returned (wrapped) by ParseLevel for a level name it
// does not accept.
var ErrUnknownLevel = errors.New("unknown log level")

// ErrInvalidConfig is returned (wrapped) by Setup when its Config cannot be
// used, for example a missing service name or a malformed OTLP endpoint.
var ErrInvalidConfig = errors.New("invalid telemetry config")
