package connectors

import "errors"

// Sentinel errors of the package, checked with errors.Is.
var (
	// ErrNotFound is returned for a connector id that has no record.
	ErrNotFound = errors.New("connector not found")
	// ErrExists is returned by Create for an id that already has a record.
	ErrExists = errors.New("connector already exists")
	// ErrNoToken is returned by Token when no API token is stored.
	ErrNoToken = errors.New("connector has no API token")
	// ErrNoHookSecret is returned by HookSecret and HookSecretVersion when
	// no event hook secret is stored for the connector.
	ErrNoHookSecret = errors.New("connector has no event hook secret")
	// ErrNoKey is returned by the token methods of a Store opened without a
	// secrets key.
	ErrNoKey = errors.New("no secrets key configured")
	// ErrInvalid is returned for a record or change that breaks a rule (a bad
	// domain, a changed id, an empty token); the error says what to fix.
	ErrInvalid = errors.New("invalid connector")
	// ErrInvalidDomain is returned by OrgURL (wrapped with ErrInvalid by the
	// Store) for an Okta domain it refuses; the error says what to fix.
	ErrInvalidDomain = errors.New("invalid Okta domain")
	// ErrNoDomain is returned by OrgURL (along with ErrInvalidDomain) for
	// a connector without an Okta domain: it was added before its
	// settings, and an owner has not set them yet.
	ErrNoDomain = errors.New("the Okta domain is not set")
	// ErrConflict is returned when a record kept changing under an update
	// through every retry.
	ErrConflict = errors.New("connector record kept changing; try again")
)
