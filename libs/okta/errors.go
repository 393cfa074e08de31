package okta

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors of the package; check them with errors.Is. Every error a
// Client returns for an Okta answer is an *APIError that unwraps to one of
// the first six.
var (
	// ErrInvalidCredentials: the token is wrong, revoked or expired (401,
	// E0000011, E0000004, E0000005).
	ErrInvalidCredentials = errors.New("okta: invalid credentials")
	// ErrPermissionDenied: the token's admin roles do not allow the call
	// (403, E0000006). It never means "nothing there".
	ErrPermissionDenied = errors.New("okta: permission denied")
	// ErrNotFound: the object does not exist (404, E0000007).
	ErrNotFound = errors.New("okta: not found")
	// ErrRateLimited: still 429 (E0000047) after the transport's retries.
	ErrRateLimited = errors.New("okta: rate limited")
	// ErrTransient: a 5xx, a timeout or a network failure that outlasted the
	// transport's retries; trying again later may succeed.
	ErrTransient = errors.New("okta: transient failure")
	// ErrInvalidInput: Okta refused the request as malformed or invalid
	// (400 E0000001/E0000003, and any other 4xx not listed above).
	ErrInvalidInput = errors.New("okta: invalid input")
	// ErrInvalidConfig: New was given a Config it cannot use.
	ErrInvalidConfig = errors.New("okta: invalid config")
)

// APIError is an error answer of Okta's API, read from its error object.
// It unwraps to the sentinel its errorCode (or, without one, its status)
// stands for.
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code is Okta's errorCode, such as E0000006; empty if the body had none.
	Code string
	// Summary is Okta's errorSummary, for people; program logic reads Code.
	Summary string
	// Causes are the errorSummary of each errorCauses entry.
	Causes []string
	// RequestID is the X-Okta-Request-Id header, for Okta support.
	RequestID string

	kind error
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "okta API answered %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Summary != "" {
		fmt.Fprintf(&b, ": %s", e.Summary)
	}
	if len(e.Causes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Causes, "; "))
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the sentinel the error stands for.
func (e *APIError) Unwrap() error { return e.kind }

// newAPIError classifies an answer: errorCode first, the status only when
// the code is missing or unknown, never the text.
func newAPIError(status int, code, summary string, causes []string, requestID string) *APIError {
	return &APIError{
		Status: status, Code: code, Summary: summary, Causes: causes, RequestID: requestID,
		kind: classify(status, code),
	}
}

func classify(status int, code string) error {
	switch code {
	case "E0000004", "E0000005", "E0000011":
		return ErrInvalidCredentials
	case "E0000006":
		return ErrPermissionDenied
	case "E0000007":
		return ErrNotFound
	case "E0000047":
		return ErrRateLimited
	case "E0000001", "E0000003":
		return ErrInvalidInput
	}
	switch {
	case status == http.StatusUnauthorized:
		return ErrInvalidCredentials
	case status == http.StatusForbidden:
		return ErrPermissionDenied
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status >= 500:
		return ErrTransient
	default:
		return ErrInvalidInput
	}
}
