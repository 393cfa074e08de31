package oktasim

import (
	"encoding/json"
	"net/http"
)

// Okta error codes the simulator answers with (shared/okta/error-codes.json).
const (
	codeValidation      = "E0000001"
	codeMalformedBody   = "E0000003"
	codeInvalidToken    = "E0000011"
	codeForbidden       = "E0000006"
	codeNotFound        = "E0000007"
	codeMethodNotAllowd = "E0000022"
	codeRateLimited     = "E0000047"
	codeInternal        = "E0000009"
	codeUnavailable     = "E0000010"
)

// apiError is Okta's error object.
type apiError struct {
	ErrorCode    string       `json:"errorCode"`
	ErrorSummary string       `json:"errorSummary"`
	ErrorLink    string       `json:"errorLink"`
	ErrorID      string       `json:"errorId"`
	ErrorCauses  []errorCause `json:"errorCauses"`
}

type errorCause struct {
	ErrorSummary string `json:"errorSummary"`
}

// writeError answers with Okta's error object. Its errorId names the
// request (X-Okta-Request-Id), as support would use it.
func writeError(w http.ResponseWriter, status int, code, summary string, causes ...string) {
	e := apiError{
		ErrorCode:    code,
		ErrorSummary: summary,
		ErrorLink:    code,
		ErrorID:      "oae" + w.Header().Get("X-Okta-Request-Id"),
		ErrorCauses:  make([]errorCause, 0, len(causes)),
	}
	for _, c := range causes {
		e.ErrorCauses = append(e.ErrorCauses, errorCause{ErrorSummary: c})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

func notFound(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotFound, codeNotFound, "Not found: Resource not found: "+what+" ("+what+")")
}

func forbidden(w http.ResponseWriter) {
	writeError(w, http.StatusForbidden, codeForbidden, "You do not have permission to perform the requested action")
}

func invalid(w http.ResponseWriter, causes ...string) {
	writeError(w, http.StatusBadRequest, codeValidation, "Api validation failed: "+firstOr(causes, "request"), causes...)
}

func malformed(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, codeMalformedBody, "The request body was not well-formed.", err.Error())
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
