package ratelimit

import "errors"

// Sentinel errors of the package; check them with errors.Is.
var (
	// ErrInvalidOptions reports Options that cannot describe a budget
	// (a share outside (0, 1], a non-positive window, scale or limit).
	ErrInvalidOptions = errors.New("ratelimit: invalid options")
	// ErrUnknownBucket reports a bucket with no limit to pace it by.
	ErrUnknownBucket = errors.New("ratelimit: unknown bucket")
	// ErrNoOrg reports an Acquire without an org: the budget is per org, so
	// an empty one would silently share a budget across orgs.
	ErrNoOrg = errors.New("ratelimit: org is required")
)
