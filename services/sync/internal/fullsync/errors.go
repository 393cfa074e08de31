package fullsync

import (
	"context"
	"errors"
	"fmt"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
)

// ErrInvalidConnector is returned for a Connector Run cannot sync.
var ErrInvalidConnector = errors.New("fullsync: invalid connector")

// Failure is why a run failed, typed for SyncRunFailed. Run returns it
// (wrapping the cause) for every failed run.
type Failure struct {
	// Reason is the failure's type.
	Reason eventsv1.SyncFailureReason
	// Message says what happened and what to do, for a person.
	Message string
	// OktaCode is Okta's errorCode behind the failure, if any.
	OktaCode string
	// Err is the cause.
	Err error
}

// Error implements error.
func (f *Failure) Error() string { return f.Message + ": " + f.Err.Error() }

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// classify turns the error that stopped a run into a Failure.
func classify(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	f = &Failure{Err: err}
	var api *okta.APIError
	if errors.As(err, &api) {
		f.OktaCode = api.Code
	}
	code := ""
	if f.OktaCode != "" {
		code = " (" + f.OktaCode + ")"
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		f.Reason, f.Message = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_CANCELLED, "the run was stopped before it finished"
	case errors.Is(err, okta.ErrInvalidCredentials):
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN
		f.Message = "Okta rejected the API token" + code + ": create a new token and update the connector"
	case errors.Is(err, okta.ErrPermissionDenied):
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_MISSING_PERMISSION
		f.Message = "the token may not read users, groups or apps" + code + ": give the token's admin at least the Read-Only Administrator role"
	case errors.Is(err, okta.ErrRateLimited):
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_RATE_LIMITED
		f.Message = "Okta's rate limits stopped the run" + code + ": it will be retried; raise the connector's rate limit share if this repeats"
	case errors.Is(err, okta.ErrTransient):
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_OKTA_UNAVAILABLE
		f.Message = "Okta did not answer or answered with a server error" + code + ": the run will be retried"
	case errors.Is(err, okta.ErrInvalidConfig):
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_BAD_DOMAIN
		f.Message = "the connector's Okta domain cannot be used: check it"
	default:
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INTERNAL
		f.Message = fmt.Sprintf("an accessbus fault stopped the run%s: see the sync service's log", code)
	}
	return f
}

// partError says whether err, from reading one container (a group's
// members, an app's assignments, a principal's roles), only skips that
// container (true, with the skip reason) or must stop the run (false).
func partError(err error) (eventsv1.SkippedPart_Reason, bool) {
	switch {
	case errors.Is(err, okta.ErrPermissionDenied):
		return eventsv1.SkippedPart_REASON_PERMISSION_DENIED, true
	case errors.Is(err, okta.ErrNotFound):
		return eventsv1.SkippedPart_REASON_NOT_FOUND, true
	case errors.Is(err, okta.ErrTransient), errors.Is(err, okta.ErrInvalidInput):
		return eventsv1.SkippedPart_REASON_UNSPECIFIED, true
	}
	return 0, false
}
