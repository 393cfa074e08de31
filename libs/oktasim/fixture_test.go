package oktasim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// fixture is a small org served over real HTTP with the three admin tokens
// of FACTS.md, for the package's tests.
type fixture struct {
	t     *testing.T
	http  *httptest.Server
	srv   *Server
	org   *Org
	url   string
	ro    string // read-only admin
	appgr string // read-only + app admin + group membership admin
	super string // super admin
	admin *User  // the super admin user
}

func newFixture(t *testing.T, limits RateLimits) *fixture {
	t.Helper()
	return newScaledFixture(t, limits, 1)
}

// newScaledFixture is newFixture on a clock running scale times faster.
func newScaledFixture(t *testing.T, limits RateLimits, scale float64) *fixture {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	clock := NewClock(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), scale)
	org := NewOrg(base, clock)
	srv := NewServer(org, Options{RateLimits: limits, AdminKey: "sim-admin"})
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(func() { hs.Close(); srv.Close() })
	f := &fixture{t: t, http: hs, srv: srv, org: org, url: base, ro: "tok-ro", appgr: "tok-appgr", super: "tok-super"}
	mk := func(login string, roles ...string) *User {
		u, err := org.CreateUser(nil, UserProfile{Login: login, Email: login, FirstName: "Admin", LastName: login}, "ACTIVE", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roles {
			if _, err := org.AssignRole(nil, "USER", u.ID, r, "", ""); err != nil {
				t.Fatal(err)
			}
		}
		return u
	}
	ro := mk("ro@example.com", "READ_ONLY_ADMIN")
	ag := mk("appgr@example.com", "READ_ONLY_ADMIN", "APP_ADMIN", "GROUP_MEMBERSHIP_ADMIN")
	f.admin = mk("super@example.com", "SUPER_ADMIN")
	for tok, u := range map[string]*User{f.ro: ro, f.appgr: ag, f.super: f.admin} {
		if err := org.AddToken(u.ID, tok); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// do sends a request with token and returns the response and its body.
func (f *fixture) do(token, method, path string, body any) (*http.Response, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		if b, ok := body.([]byte); ok {
			rd = bytes.NewReader(b)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				f.t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "SSWS "+token)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, b
}

// errorCode reads an Okta error body's errorCode.
func errorCode(b []byte) string {
	var e struct {
		ErrorCode string `json:"errorCode"`
	}
	_ = json.Unmarshal(b, &e)
	return e.ErrorCode
}

func TestCoreAuthAndHeaders(t *testing.T) {
	f := newFixture(t, Workforce)
	resp, b := f.do("nope", "GET", "/api/v1/users", nil)
	if resp.StatusCode != 401 || errorCode(b) != codeInvalidToken {
		t.Fatalf("bad token: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get("X-Rate-Limit-Remaining") == "" {
		t.Error("a 401 lacks the rate-limit headers every Okta answer carries")
	}
	resp, _ = f.do(f.ro, "GET", "/api/v1/nothing-here", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	for _, h := range []string{"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset", "Date", "X-Okta-Request-Id"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing header %s", h)
		}
	}
}

func TestRateLimitAnswers429WithE0000047(t *testing.T) {
	limits := RateLimits{Name: "tiny", PerMinute: map[string]int{BucketOther: 2}, Concurrency: 10}
	f := newFixture(t, limits)
	for i := range 2 {
		if resp, _ := f.do(f.ro, "GET", "/api/v1/nothing", nil); resp.Header.Get("X-Rate-Limit-Remaining") != []string{"1", "0"}[i] {
			t.Fatalf("request %d remaining %q", i, resp.Header.Get("X-Rate-Limit-Remaining"))
		}
	}
	resp, b := f.do(f.ro, "GET", "/api/v1/nothing", nil)
	if resp.StatusCode != 429 || errorCode(b) != codeRateLimited {
		t.Fatalf("third request: %d %s", resp.StatusCode, b)
	}
	if c := f.srv.Counts(); c.Requests[BucketOther] != 3 || c.Limited[BucketOther] != 1 {
		t.Fatalf("counts %+v", c)
	}
}

func TestBucketOf(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/v1/apps", BucketApps},
		{"GET", "/api/v1/apps/0oa1/users", BucketApps},
		{"GET", "/api/v1/apps/0oa1", BucketAppByID},
		{"GET", "/api/v1/groups", BucketGroups},
		{"PUT", "/api/v1/groups/00g1/users/00u1", BucketGroups},
		{"GET", "/api/v1/groups/00g1", BucketGroupByID},
		{"GET", "/api/v1/users", BucketUsersList},
		{"GET", "/api/v1/users/00u1", BucketUserByID},
		{"POST", "/api/v1/users/00u1", BucketUserWrites},
		{"GET", "/api/v1/users/00u1/roles", BucketOther},
		{"GET", "/api/v1/logs", BucketLogs},
		{"GET", "/api/v1/iam/roles", BucketOther},
	} {
		if got := BucketOf(tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.method, tc.path, got, tc.want)
		}
	}
}
