package secrets

import "errors"

// Sentinel errors of the package, checked with errors.Is.
var (
	// ErrInvalidKey is returned for a key that is missing, not base64 or not
	// 32 bytes long.
	ErrInvalidKey = errors.New("invalid secrets key")
	// ErrDecrypt is returned when a sealed value cannot be opened: altered,
	// bound to another owner, or sealed with another key.
	ErrDecrypt = errors.New("cannot decrypt secret")
	// ErrWrongKey is returned (together with ErrDecrypt) when a sealed value
	// names another key than the one given.
	ErrWrongKey = errors.New("sealed with another key")
)
