package oktasim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const hookSecret = "s3cret-hook-value-7f1c"

// hookCall is one call a hookReceiver got.
type hookCall struct {
	method string
	header http.Header
	body   []byte
}

// hookReceiver is an event hook endpoint: it answers the verification GET
// (echoing the challenge unless badEcho) and each delivery POST with the
// status answer gives for the n-th POST (0-based).
type hookReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	got     chan hookCall
	badEcho bool
	answer  func(n int) int

	mu    sync.Mutex
	posts int
}

func newHookReceiver(t *testing.T, answer func(n int) int) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{t: t, got: make(chan hookCall, 256), answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.got <- hookCall{method: r.Method, header: r.Header.Clone(), body: b}
		if r.Method == http.MethodGet {
			echo := r.Header.Get("x-okta-verification-challenge")
			if rc.badEcho {
				echo = "not-the-challenge"
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"verification": echo})
			return
		}
		rc.mu.Lock()
		n := rc.posts
		rc.posts++
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// next returns the next call, failing after wait.
func (rc *hookReceiver) next(wait time.Duration) hookCall {
	rc.t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(wait):
		rc.t.Fatalf("hookReceiver got nothing within %s", wait)
		return hookCall{}
	}
}

// nextPost skips verification GETs and returns the next delivery.
func (rc *hookReceiver) nextPost(wait time.Duration) hookCall {
	rc.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r := rc.next(time.Until(deadline))
		if r.method == http.MethodPost {
			return r
		}
	}
}

// none checks that no delivery arrives within wait.
func (rc *hookReceiver) none(wait time.Duration) {
	rc.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case r := <-rc.got:
			if r.method == http.MethodPost {
				rc.t.Fatalf("unexpected delivery: %s", r.body)
			}
		case <-deadline:
			return
		}
	}
}

func hookBody(name, uri string, events ...string) map[string]any {
	return map[string]any{
		"name":   name,
		"events": map[string]any{"type": "EVENT_TYPE", "items": events},
		"channel": map[string]any{
			"type": "HTTP", "version": "1.0.0",
			"config": map[string]any{
				"uri":        uri,
				"headers":    []map[string]string{{"key": "X-Other-Header", "value": "other-value"}},
				"authScheme": map[string]string{"type": "HEADER", "key": "Authorization", "value": hookSecret},
			},
		},
	}
}

// hookJSON is the part of an EventHook answer the tests read.
type hookJSON struct {
	ID                 string `json:"id"`
	Status             string `json:"status"`
	VerificationStatus string `json:"verificationStatus"`
	Name               string `json:"name"`
	Channel            struct {
		Config struct {
			URI        string          `json:"uri"`
			AuthScheme json.RawMessage `json:"authScheme"`
		} `json:"config"`
	} `json:"channel"`
}

func decodeHook(t *testing.T, b []byte) hookJSON {
	t.Helper()
	var h hookJSON
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("decode hook: %v: %s", err, b)
	}
	return h
}

// createHook registers a hook with the super admin token and returns its id.
func (f *fixture) createHook(uri string, events ...string) string {
	f.t.Helper()
	resp, b := f.do(f.super, "POST", "/api/v1/eventHooks", hookBody("hook", uri, events...))
	if resp.StatusCode != 200 {
		f.t.Fatalf("create hook: %d %s", resp.StatusCode, b)
	}
	return decodeHook(f.t, b).ID
}

// verifiedHook registers and verifies a hook delivering to rc.
func (f *fixture) verifiedHook(rc *hookReceiver, events ...string) string {
	f.t.Helper()
	id := f.createHook(rc.srv.URL+"/hook", events...)
	resp, b := f.do(f.super, "POST", "/api/v1/eventHooks/"+id+"/lifecycle/verify", nil)
	if resp.StatusCode != 200 || decodeHook(f.t, b).VerificationStatus != HookVerified {
		f.t.Fatalf("verify hook: %d %s", resp.StatusCode, b)
	}
	if r := rc.next(time.Second); r.method != http.MethodGet {
		f.t.Fatalf("verification was a %s", r.method)
	}
	return id
}

// waitHookStats waits until the hook stats satisfy ok.
func (f *fixture) waitHookStats(ok func(HookStats) bool) HookStats {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := f.srv.HookStats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("hook stats never got there: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deliveryJSON is the body of an event hook delivery.
type deliveryJSON struct {
	EventType          string `json:"eventType"`
	EventTypeVersion   string `json:"eventTypeVersion"`
	CloudEventsVersion string `json:"cloudEventsVersion"`
	Source             string `json:"source"`
	EventID            string `json:"eventId"`
	EventTime          string `json:"eventTime"`
	ContentType        string `json:"contentType"`
	Data               struct {
		Events []struct {
			UUID      string     `json:"uuid"`
			EventType string     `json:"eventType"`
			Published string     `json:"published"`
			Actor     LogActor   `json:"actor"`
			Target    []LogActor `json:"target"`
			Outcome   struct {
				Result string `json:"result"`
			} `json:"outcome"`
		} `json:"events"`
	} `json:"data"`
}

func decodeDelivery(t *testing.T, b []byte) deliveryJSON {
	t.Helper()
	var d deliveryJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decode delivery: %v: %s", err, b)
	}
	return d
}

func (f *fixture) hookActor() *LogActor {
	a := userTarget(f.admin)
	return &a
}

func TestHookEligibleEventTypesAreSortedAndKnown(t *testing.T) {
	if !sort.StringsAreSorted(hookEligibleEventTypes) {
		t.Fatal("hookEligibleEventTypes is not sorted: binary search would miss types")
	}
	for _, typ := range []string{
		"group.user_membership.add", "group.user_membership.remove",
		"application.user_membership.add", "application.user_membership.remove", "application.user_membership.update",
		"group.application_assignment.add", "user.lifecycle.create", "user.lifecycle.delete.initiated",
		"group.lifecycle.create", "group.profile.update", "application.lifecycle.update",
		"user.account.privilege.grant", "group.privilege.revoke", "iam.role.create", "iam.resourceset.bindings.add",
	} {
		if !hookEligible(typ) {
			t.Errorf("%s should be hook-eligible", typ)
		}
	}
	for _, typ := range []string{"event_hook.created", "event_hook.delivery", "group.user_membership.rule.trigger", "no.such.type", ""} {
		if hookEligible(typ) {
			t.Errorf("%s should not be hook-eligible", typ)
		}
	}
}

func TestHookLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	rc := newHookReceiver(t, nil)

	resp, b := c.check(f.super, "POST", "/api/v1/eventHooks", hookBody("governance", rc.srv.URL+"/hook", "group.user_membership.add"))
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	h := decodeHook(t, b)
	if !strings.HasPrefix(h.ID, "who") || h.Status != HookActive || h.VerificationStatus != HookUnverified {
		t.Fatalf("created hook %+v", h)
	}
	path := "/api/v1/eventHooks/" + h.ID
	answers := [][]byte{b}

	resp, b = c.check(f.super, "GET", "/api/v1/eventHooks", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), h.ID) {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	answers = append(answers, b)

	resp, b = c.check(f.super, "POST", path+"/lifecycle/verify", nil)
	if resp.StatusCode != 200 || decodeHook(t, b).VerificationStatus != HookVerified {
		t.Fatalf("verify: %d %s", resp.StatusCode, b)
	}
	answers = append(answers, b)
	ver := rc.next(time.Second)
	challenge := ver.header.Get("X-Okta-Verification-Challenge")
	if ver.method != http.MethodGet || len(challenge) < 16 {
		t.Fatalf("verification call %s with challenge %q", ver.method, challenge)
	}
	if ver.header.Get("Authorization") != hookSecret || ver.header.Get("X-Other-Header") != "other-value" {
		t.Fatalf("verification headers %v", ver.header)
	}

	// Replacing the channel requires a new verification; the auth value
	// is kept when the same key comes back without it.
	body := hookBody("renamed", rc.srv.URL+"/other", "group.user_membership.add", "group.user_membership.remove")
	body["channel"].(map[string]any)["config"].(map[string]any)["authScheme"] = map[string]string{"type": "HEADER", "key": "Authorization"}
	resp, b = c.check(f.super, "PUT", path, body)
	if got := decodeHook(t, b); resp.StatusCode != 200 || got.Name != "renamed" || got.VerificationStatus != HookUnverified {
		t.Fatalf("replace: %d %s", resp.StatusCode, b)
	}
	answers = append(answers, b)
	if resp, b = c.check(f.super, "POST", path+"/lifecycle/verify", nil); resp.StatusCode != 200 {
		t.Fatalf("verify after replace: %d %s", resp.StatusCode, b)
	}
	if ver = rc.next(time.Second); ver.header.Get("Authorization") != hookSecret {
		t.Fatalf("the kept secret was not sent: %v", ver.header)
	}

	resp, b = c.check(f.super, "DELETE", path, nil)
	if resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Fatalf("delete of an active hook: %d %s", resp.StatusCode, b)
	}
	resp, b = c.check(f.super, "POST", path+"/lifecycle/deactivate", nil)
	if resp.StatusCode != 200 || decodeHook(t, b).Status != HookInactive {
		t.Fatalf("deactivate: %d %s", resp.StatusCode, b)
	}
	answers = append(answers, b)
	resp, b = c.check(f.super, "POST", path+"/lifecycle/activate", nil)
	if resp.StatusCode != 200 || decodeHook(t, b).Status != HookActive {
		t.Fatalf("activate: %d %s", resp.StatusCode, b)
	}
	answers = append(answers, b)
	resp, b = c.check(f.super, "GET", path, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("get: %d %s", resp.StatusCode, b)
	}
	answers = append(answers, b)
	if got := decodeHook(t, b); string(got.Channel.Config.AuthScheme) != `{"type":"HEADER","key":"Authorization"}` {
		t.Fatalf("authScheme rendered as %s", got.Channel.Config.AuthScheme)
	}
	for _, a := range answers {
		if strings.Contains(string(a), hookSecret) {
			t.Fatalf("the write-only secret is in an answer: %s", a)
		}
	}

	c.check(f.super, "POST", path+"/lifecycle/deactivate", nil)
	if resp, b = c.check(f.super, "DELETE", path, nil); resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	if resp, _ = c.check(f.super, "GET", path, nil); resp.StatusCode != 404 {
		t.Fatalf("get after delete: %d", resp.StatusCode)
	}

	var types []string
	f.org.mu.RLock()
	for _, ev := range f.org.logs {
		if strings.HasPrefix(ev.EventType, "event_hook.") {
			types = append(types, ev.EventType)
		}
	}
	f.org.mu.RUnlock()
	want := []string{"event_hook.created", "event_hook.verified", "event_hook.updated", "event_hook.verified",
		"event_hook.deactivated", "event_hook.activated", "event_hook.deactivated", "event_hook.deleted"}
	if !slices.Equal(types, want) {
		t.Fatalf("System Log has %v, want %v", types, want)
	}
}

func TestHookErrorAnswers(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	id := f.createHook("https://hooks.example.com/okta", "user.lifecycle.create")
	path := "/api/v1/eventHooks/" + id
	valid := hookBody("h", "https://hooks.example.com/okta", "user.lifecycle.create")
	with := func(edit func(m map[string]any)) map[string]any {
		b, _ := json.Marshal(valid)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		edit(m)
		return m
	}
	config := func(m map[string]any) map[string]any {
		return m["channel"].(map[string]any)["config"].(map[string]any)
	}
	for _, tc := range []struct {
		name          string
		token, method string
		path          string
		body          any
		status        int
		code          string
		cause         string
	}{
		{"bad token", "nope", "GET", "/api/v1/eventHooks", nil, 401, codeInvalidToken, ""},
		{"read-only list", f.ro, "GET", "/api/v1/eventHooks", nil, 403, codeForbidden, ""},
		{"app+group admin list", f.appgr, "GET", "/api/v1/eventHooks", nil, 403, codeForbidden, ""},
		{"read-only create", f.ro, "POST", "/api/v1/eventHooks", valid, 403, codeForbidden, ""},
		{"read-only get", f.ro, "GET", path, nil, 403, codeForbidden, ""},
		{"read-only replace", f.ro, "PUT", path, valid, 403, codeForbidden, ""},
		{"read-only delete", f.appgr, "DELETE", path, nil, 403, codeForbidden, ""},
		{"read-only activate", f.ro, "POST", path + "/lifecycle/activate", nil, 403, codeForbidden, ""},
		{"read-only deactivate", f.appgr, "POST", path + "/lifecycle/deactivate", nil, 403, codeForbidden, ""},
		{"read-only verify", f.ro, "POST", path + "/lifecycle/verify", nil, 403, codeForbidden, ""},
		{"unknown get", f.super, "GET", "/api/v1/eventHooks/whoNOPE", nil, 404, codeNotFound, ""},
		{"unknown replace", f.super, "PUT", "/api/v1/eventHooks/whoNOPE", valid, 404, codeNotFound, ""},
		{"unknown replace, bad body", f.super, "PUT", "/api/v1/eventHooks/whoNOPE", map[string]any{}, 404, codeNotFound, ""},
		{"unknown delete", f.super, "DELETE", "/api/v1/eventHooks/whoNOPE", nil, 404, codeNotFound, ""},
		{"unknown activate", f.super, "POST", "/api/v1/eventHooks/whoNOPE/lifecycle/activate", nil, 404, codeNotFound, ""},
		{"unknown deactivate", f.super, "POST", "/api/v1/eventHooks/whoNOPE/lifecycle/deactivate", nil, 404, codeNotFound, ""},
		{"unknown verify", f.super, "POST", "/api/v1/eventHooks/whoNOPE/lifecycle/verify", nil, 404, codeNotFound, ""},
		{"patch list", f.super, "PATCH", "/api/v1/eventHooks", valid, 405, codeMethodNotAllowd, ""},
		{"post hook", f.super, "POST", path, valid, 405, codeMethodNotAllowd, ""},
		{"get activate", f.super, "GET", path + "/lifecycle/activate", nil, 405, codeMethodNotAllowd, ""},
		{"malformed create", f.super, "POST", "/api/v1/eventHooks", []byte(`{"name":`), 400, codeMalformedBody, ""},
		{"malformed replace", f.super, "PUT", path, []byte(`[`), 400, codeMalformedBody, ""},
		{"no name", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { delete(m, "name") }), 400, codeValidation, "name"},
		{"no events", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { delete(m, "events") }), 400, codeValidation, "events"},
		{"empty events", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { m["events"].(map[string]any)["items"] = []string{} }), 400, codeValidation, "events.items"},
		{"ineligible event", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) {
			m["events"].(map[string]any)["items"] = []string{"user.lifecycle.create", "event_hook.created"}
		}), 400, codeValidation, "event_hook.created"},
		{"unknown event", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { m["events"].(map[string]any)["items"] = []string{"no.such.event"} }), 400, codeValidation, "no.such.event"},
		{"events type", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { m["events"].(map[string]any)["type"] = "FLOW" }), 400, codeValidation, "events.type"},
		{"filter", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) {
			m["events"].(map[string]any)["filter"] = map[string]any{"type": "EXPRESSION_LANGUAGE"}
		}), 400, codeValidation, "events.filter"},
		{"no channel", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { delete(m, "channel") }), 400, codeValidation, "channel"},
		{"channel version", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { m["channel"].(map[string]any)["version"] = "2.0.0" }), 400, codeValidation, "channel.version"},
		{"channel type", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { m["channel"].(map[string]any)["type"] = "OAUTH" }), 400, codeValidation, "channel.type"},
		{"no uri", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { delete(config(m), "uri") }), 400, codeValidation, "channel.config.uri"},
		{"http uri", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { config(m)["uri"] = "http://hooks.example.com/okta" }), 400, codeValidation, "HTTPS"},
		{"relative uri", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) { config(m)["uri"] = "/okta" }), 400, codeValidation, "channel.config.uri"},
		{"auth type", f.super, "POST", "/api/v1/eventHooks", with(func(m map[string]any) {
			config(m)["authScheme"] = map[string]string{"type": "OAUTH2", "key": "Authorization", "value": "x"}
		}), 400, codeValidation, "authScheme.type"},
		{"bad replace", f.super, "PUT", path, with(func(m map[string]any) { m["name"] = " " }), 400, codeValidation, "name"},
		{"delete active", f.super, "DELETE", path, nil, 400, codeValidation, "INACTIVE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := c.check
			if tc.status == http.StatusMethodNotAllowed {
				check = f.do // the spec has no such operation to check against
			}
			resp, b := check(tc.token, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
			if tc.cause != "" && !strings.Contains(string(b), tc.cause) {
				t.Fatalf("no cause naming %q: %s", tc.cause, b)
			}
		})
	}
	// Loopback receivers may use plain http (a simulator allowance).
	for _, uri := range []string{"http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x"} {
		if resp, b := f.do(f.super, "POST", "/api/v1/eventHooks", hookBody("loop", uri, "user.lifecycle.create")); resp.StatusCode != 200 {
			t.Errorf("%s refused: %d %s", uri, resp.StatusCode, b)
		}
	}
}

func TestHookActiveLimitIs25(t *testing.T) {
	f := newFixture(t, NoLimits)
	var ids []string
	for i := range maxActiveHooks {
		ids = append(ids, f.createHook(fmt.Sprintf("https://hooks.example.com/%d", i), "user.lifecycle.create"))
	}
	resp, b := f.do(f.super, "POST", "/api/v1/eventHooks", hookBody("one too many", "https://hooks.example.com/x", "user.lifecycle.create"))
	if resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Fatalf("26th active hook: %d %s", resp.StatusCode, b)
	}
	if resp, b = f.do(f.super, "POST", "/api/v1/eventHooks/"+ids[0]+"/lifecycle/deactivate", nil); resp.StatusCode != 200 {
		t.Fatalf("deactivate: %d %s", resp.StatusCode, b)
	}
	extra := f.createHook("https://hooks.example.com/y", "user.lifecycle.create")
	resp, b = f.do(f.super, "POST", "/api/v1/eventHooks/"+ids[0]+"/lifecycle/activate", nil)
	if resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Fatalf("activating a 26th hook: %d %s", resp.StatusCode, b)
	}
	f.do(f.super, "POST", "/api/v1/eventHooks/"+extra+"/lifecycle/deactivate", nil)
	if resp, b = f.do(f.super, "POST", "/api/v1/eventHooks/"+ids[0]+"/lifecycle/activate", nil); resp.StatusCode != 200 {
		t.Fatalf("activate within the limit: %d %s", resp.StatusCode, b)
	}
}

func TestHookVerificationFailsOnAWrongEcho(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	rc := newHookReceiver(t, nil)
	rc.badEcho = true
	id := f.createHook(rc.srv.URL+"/hook", "group.user_membership.add")
	resp, b := newContract(t, f).check(f.super, "POST", "/api/v1/eventHooks/"+id+"/lifecycle/verify", nil)
	if resp.StatusCode != 400 || errorCode(b) != codeValidation || !strings.Contains(string(b), "echo") {
		t.Fatalf("wrong echo: %d %s", resp.StatusCode, b)
	}
	if r := rc.next(time.Second); r.method != http.MethodGet {
		t.Fatalf("verification was a %s", r.method)
	}
	_, b = f.do(f.super, "GET", "/api/v1/eventHooks/"+id, nil)
	if decodeHook(t, b).VerificationStatus != HookUnverified {
		t.Fatalf("hook verified after a wrong echo: %s", b)
	}
	// Okta logs the attempt even when it fails.
	_, b = f.do(f.super, "GET", `/api/v1/logs?filter=eventType+eq+"event_hook.verified"`, nil)
	if !strings.Contains(string(b), `"result":"FAILURE"`) {
		t.Fatalf("no failed event_hook.verified in the log: %s", b)
	}

	// An unverified hook gets no deliveries.
	g, _ := f.org.CreateGroup(nil, GroupOkta, "g", "", "", time.Time{})
	if _, err := f.org.AddMember(f.hookActor(), g.ID, f.admin.ID); err != nil {
		t.Fatal(err)
	}
	rc.none(300 * time.Millisecond)

	// Nor does a hookReceiver that answers the challenge with an error.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer down.Close()
	id = f.createHook(down.URL, "group.user_membership.add")
	resp, b = f.do(f.super, "POST", "/api/v1/eventHooks/"+id+"/lifecycle/verify", nil)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "404") {
		t.Fatalf("verify against a 404: %d %s", resp.StatusCode, b)
	}
}

func TestHookDeliversAMembershipChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	rc := newHookReceiver(t, nil)
	id := f.verifiedHook(rc, "group.user_membership.add")
	other := newHookReceiver(t, nil)
	f.verifiedHook(other, "group.user_membership.remove")
	g, err := f.org.CreateGroup(nil, GroupOkta, "Engineering", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.org.CreateUser(nil, UserProfile{Login: "ann@example.com", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AddMember(f.hookActor(), g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	post := rc.nextPost(2 * time.Second)
	if post.header.Get("Authorization") != hookSecret || post.header.Get("X-Other-Header") != "other-value" {
		t.Fatalf("delivery headers %v", post.header)
	}
	if ct := post.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	d := decodeDelivery(t, post.body)
	if d.EventType != "com.okta.event_hook" || d.EventTypeVersion != "1.0" || d.CloudEventsVersion != "0.1" ||
		d.ContentType != "application/json" || d.Source != f.url+"/api/v1/eventHooks/"+id || d.EventID == "" {
		t.Fatalf("delivery envelope %s", post.body)
	}
	if _, err := time.Parse(time.RFC3339, d.EventTime); err != nil {
		t.Fatalf("eventTime %q: %v", d.EventTime, err)
	}
	if len(d.Data.Events) != 1 {
		t.Fatalf("want 1 event, got %s", post.body)
	}
	ev := d.Data.Events[0]
	if ev.EventType != "group.user_membership.add" || ev.UUID == "" || ev.Published == "" || ev.Outcome.Result != "SUCCESS" || ev.Actor.ID != f.admin.ID {
		t.Fatalf("event %+v", ev)
	}
	targets := map[string]string{}
	for _, tg := range ev.Target {
		targets[tg.Type] = tg.ID
	}
	if targets["User"] != u.ID || targets["UserGroup"] != g.ID {
		t.Fatalf("targets %+v", ev.Target)
	}
	// The same event as the System Log serves.
	_, b := f.do(f.ro, "GET", `/api/v1/logs?filter=eventType+eq+"group.user_membership.add"`, nil)
	if !strings.Contains(string(b), ev.UUID) {
		t.Fatalf("delivered event %s is not in the System Log: %s", ev.UUID, b)
	}
	// The hook subscribed to removals only gets nothing.
	other.none(200 * time.Millisecond)
	f.waitHookStats(func(s HookStats) bool { return s.Delivered == 1 && s.Events == 1 })

	// A deactivated hook gets nothing.
	f.do(f.super, "POST", "/api/v1/eventHooks/"+id+"/lifecycle/deactivate", nil)
	u2, _ := f.org.CreateUser(nil, UserProfile{Login: "bo@example.com"}, "ACTIVE", time.Time{})
	f.org.AddMember(f.hookActor(), g.ID, u2.ID)
	rc.none(300 * time.Millisecond)
}

func TestHookBatchesEventsCloseInTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	rc := newHookReceiver(t, nil)
	f.verifiedHook(rc, "group.user_membership.add", "user.lifecycle.create")
	g, _ := f.org.CreateGroup(nil, GroupOkta, "g", "", "", time.Time{})
	var want []string
	for i := range 5 {
		u, err := f.org.CreateUser(f.hookActor(), UserProfile{Login: fmt.Sprintf("b%d@example.com", i)}, "ACTIVE", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		f.org.AddMember(f.hookActor(), g.ID, u.ID)
		want = append(want, "user.lifecycle.create", "group.user_membership.add")
	}
	d := decodeDelivery(t, rc.nextPost(2*time.Second).body)
	var got []string
	for _, ev := range d.Data.Events {
		got = append(got, ev.EventType)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("one delivery should carry all 10 events in order, got %v", got)
	}
	rc.none(250 * time.Millisecond)
	if st := f.srv.HookStats(); st.Delivered != 1 || st.Events != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHookBatchesHoldAtMost50Events(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	rc := newHookReceiver(t, nil)
	f.verifiedHook(rc, "user.lifecycle.create")
	for i := range 120 {
		if _, err := f.org.CreateUser(f.hookActor(), UserProfile{Login: fmt.Sprintf("m%d@example.com", i)}, "ACTIVE", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 120 {
		d := decodeDelivery(t, rc.nextPost(2*time.Second).body)
		if n := len(d.Data.Events); n == 0 || n > hookBatchMax {
			t.Fatalf("a delivery carried %d events", n)
		}
		for _, ev := range d.Data.Events {
			if seen[ev.UUID] {
				t.Fatalf("event %s delivered twice", ev.UUID)
			}
			seen[ev.UUID] = true
		}
	}
}

func TestHookRetriesOnceAfter5xxOrTimeoutOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers to the 1st, 2nd, ... POST; -1 stalls past the timeout
		posts    int
		want     HookStats
	}{
		{"success", []int{200}, 1, HookStats{Delivered: 1, Events: 1}},
		{"204 is success", []int{204}, 1, HookStats{Delivered: 1, Events: 1}},
		{"500 then success", []int{500, 200}, 2, HookStats{Delivered: 1, Events: 1, Retried: 1}},
		{"503 twice", []int{503, 503}, 2, HookStats{Failed: 1, Retried: 1}},
		{"400 is final", []int{400}, 1, HookStats{Failed: 1}},
		{"401 is final", []int{401}, 1, HookStats{Failed: 1}},
		{"timeout then success", []int{-1, 200}, 2, HookStats{Delivered: 1, Events: 1, Retried: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, NoLimits)
			f.srv.hooks.mu.Lock()
			f.srv.hooks.timeout = 300 * time.Millisecond
			f.srv.hooks.mu.Unlock()
			release := make(chan struct{})
			rc := newHookReceiver(t, func(n int) int {
				if n >= len(tc.statuses) {
					return 200
				}
				if tc.statuses[n] == -1 {
					select {
					case <-release:
					case <-time.After(time.Second):
					}
					return 200
				}
				return tc.statuses[n]
			})
			t.Cleanup(func() { close(release) }) // before the hookReceiver closes, which waits for its handlers
			f.verifiedHook(rc, "user.lifecycle.create")
			if _, err := f.org.CreateUser(f.hookActor(), UserProfile{Login: "r@example.com"}, "ACTIVE", time.Time{}); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for range tc.posts {
				ids = append(ids, decodeDelivery(t, rc.nextPost(2*time.Second).body).EventID)
			}
			if len(ids) == 2 && ids[0] != ids[1] {
				t.Fatalf("a retry must repeat the delivery: eventIds %v", ids)
			}
			rc.none(200 * time.Millisecond)
			st := f.waitHookStats(func(s HookStats) bool { return s.Delivered+s.Failed == 1 })
			if st != tc.want {
				t.Fatalf("stats %+v, want %+v", st, tc.want)
			}
			if tc.want.Failed == 1 {
				_, b := f.do(f.super, "GET", `/api/v1/logs?filter=eventType+eq+"event_hook.delivery"`, nil)
				if !strings.Contains(string(b), `"result":"FAILURE"`) {
					t.Fatalf("failed delivery not logged: %s", b)
				}
			}
		})
	}
}

func TestHookSlowReceiverDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	release := make(chan struct{})
	slow := newHookReceiver(t, func(int) int { <-release; return 200 })
	t.Cleanup(func() { close(release) })
	fast := newHookReceiver(t, nil)
	f.verifiedHook(slow, "user.lifecycle.create")
	f.verifiedHook(fast, "user.lifecycle.create")
	for i := range 3 {
		f.org.CreateUser(f.hookActor(), UserProfile{Login: fmt.Sprintf("s%d@example.com", i)}, "ACTIVE", time.Time{})
		fast.nextPost(time.Second)
		time.Sleep(120 * time.Millisecond) // past the batch window: a new delivery each time
	}
	slow.nextPost(time.Second) // the first delivery is still stuck there
}

func TestHookCloseAbortsDeliveriesInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, NoLimits)
	release := make(chan struct{})
	defer close(release)
	rc := newHookReceiver(t, func(int) int { <-release; return 200 })
	f.verifiedHook(rc, "user.lifecycle.create")
	f.org.CreateUser(f.hookActor(), UserProfile{Login: "c@example.com"}, "ACTIVE", time.Time{})
	rc.nextPost(time.Second)
	done := make(chan struct{})
	go func() { f.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close did not stop a delivery in flight")
	}
	if st := f.srv.HookStats(); st.Failed != 0 || st.Delivered != 0 {
		t.Fatalf("an aborted delivery counted: %+v", st)
	}
	// Events after Close are not delivered, and emitting them never blocks.
	f.org.CreateUser(f.hookActor(), UserProfile{Login: "d@example.com"}, "ACTIVE", time.Time{})
	rc.none(200 * time.Millisecond)
}

// TestHookGetsTheEventsOfWhenItWasActive: which hooks receive an event is
// decided when the event happens, not when its batch goes out.
func TestHookGetsTheEventsOfWhenItWasActive(t *testing.T) {
	f := newFixture(t, NoLimits)
	rc := newHookReceiver(t, nil)
	id := f.verifiedHook(rc, "group.user_membership.add", "group.user_membership.remove")
	g, _ := f.org.CreateGroup(nil, GroupOkta, "Ops", "", "", time.Time{})
	u, _ := f.org.CreateUser(nil, UserProfile{Login: "kim@example.com", Email: "kim@example.com", FirstName: "Kim", LastName: "Ng"}, "ACTIVE", time.Time{})
	// Added while the hook is active, then the hook is deactivated within
	// the batching window: the add is still delivered.
	if _, err := f.org.AddMember(f.hookActor(), g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if resp, b := f.do(f.super, "POST", "/api/v1/eventHooks/"+id+"/lifecycle/deactivate", nil); resp.StatusCode != 200 {
		t.Fatalf("deactivate: %d %s", resp.StatusCode, b)
	}
	// Removed while inactive: never delivered.
	if _, err := f.org.RemoveMember(f.hookActor(), g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	d := decodeDelivery(t, rc.nextPost(2*time.Second).body)
	if len(d.Data.Events) != 1 || d.Data.Events[0].EventType != "group.user_membership.add" {
		t.Fatalf("delivered %+v, want only the add", d.Data.Events)
	}
	f.waitHookStats(func(s HookStats) bool { return s.Delivered >= 1 })
	time.Sleep(300 * time.Millisecond) // past the batching window
	if got := f.srv.HookStats().Delivered; got != 1 {
		t.Fatalf("%d deliveries, want 1", got)
	}
}
