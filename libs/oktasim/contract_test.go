package oktasim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// specPath finds Okta's OpenAPI spec: OKTA_OPENAPI_SPEC, else the copy in
// shared/okta beside the repository (where CI and every session have it).
func specPath() string {
	if p := os.Getenv("OKTA_OPENAPI_SPEC"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "..", "shared", "okta", "management-openapi.yaml")
}

var (
	specOnce sync.Once
	specDoc  *openapi3.T
	specErr  error
)

// loadSpec loads and validates the spec once per test binary.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromFile(specPath())
	})
	if specErr != nil {
		t.Fatalf("load Okta's OpenAPI spec from %s (set OKTA_OPENAPI_SPEC to its path): %v", specPath(), specErr)
	}
	return specDoc
}

// contract checks answers of one simulator against the spec.
type contract struct {
	t      *testing.T
	f      *fixture
	router routers.Router
}

func newContract(t *testing.T, f *fixture) *contract {
	t.Helper()
	doc := *loadSpec(t)
	// Route requests to our server rather than {yourOktaDomain}.
	doc.Servers = openapi3.Servers{{URL: f.url}}
	r, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatalf("router from spec: %v", err)
	}
	return &contract{t: t, f: f, router: r}
}

// check sends a request and validates status, headers and body against the
// operation's documented response; an error status the spec does not list
// (401 on most paths) is checked against Okta's Error object instead.
func (c *contract) check(token, method, path string, body any) (*http.Response, []byte) {
	c.t.Helper()
	resp, b := c.f.do(token, method, path, body)
	req, err := http.NewRequest(method, c.f.url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s is not in Okta's spec: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
	}
	documented := route.Operation.Responses.Status(resp.StatusCode) != nil
	if !documented && resp.StatusCode >= 400 {
		c.checkError(method, path, resp, b)
		return resp, b
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s -> %d does not match Okta's spec: %v\nbody: %s", method, path, resp.StatusCode, err, truncateBody(b))
	}
	return resp, b
}

// checkError validates an error answer against the spec's Error schema.
func (c *contract) checkError(method, path string, resp *http.Response, b []byte) {
	c.t.Helper()
	schema := c.f.errorSchema(c.t)
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		c.t.Errorf("%s %s -> %d: error body is not JSON: %s", method, path, resp.StatusCode, truncateBody(b))
		return
	}
	if err := schema.VisitJSON(v); err != nil {
		c.t.Errorf("%s %s -> %d: error body is not Okta's Error: %v", method, path, resp.StatusCode, err)
	}
	if code := errorCode(b); !strings.HasPrefix(code, "E0000") {
		c.t.Errorf("%s %s -> %d: errorCode %q", method, path, resp.StatusCode, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.t.Errorf("%s %s -> %d: content type %q", method, path, resp.StatusCode, ct)
	}
}

func (f *fixture) errorSchema(t *testing.T) *openapi3.Schema {
	ref := loadSpec(t).Components.Schemas["Error"]
	if ref == nil || ref.Value == nil {
		t.Fatal("spec has no Error schema")
	}
	return ref.Value
}

func truncateBody(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(bytes.TrimSpace(b))
}
