package oktasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// logFreeze stops the org's clock at t, so that tests place events in time.
func logFreeze(c *Clock, t time.Time) {
	c.mu.Lock()
	c.fixed, c.now = true, t
	c.mu.Unlock()
}

// logPage is one answer of GET /api/v1/logs.
type logPage struct {
	status int
	body   []byte
	events []struct {
		UUID      string     `json:"uuid"`
		EventType string     `json:"eventType"`
		Published string     `json:"published"`
		Actor     LogActor   `json:"actor"`
		Target    []LogActor `json:"target"`
	}
	self, next string // paths with query, relative to the org
}

// getLogs GETs a System Log URL (a path, or a full link from a Link header).
func (f *fixture) getLogs(token, pathOrLink string) logPage {
	f.t.Helper()
	path := strings.TrimPrefix(pathOrLink, f.url)
	resp, b := f.do(token, "GET", path, nil)
	p := logPage{status: resp.StatusCode, body: b}
	if resp.StatusCode != 200 {
		return p
	}
	if err := json.Unmarshal(b, &p.events); err != nil {
		f.t.Fatalf("decode logs: %v: %s", err, b)
	}
	links := resp.Header.Values("Link")
	for _, l := range links {
		if strings.Contains(l, ",") {
			f.t.Fatalf("a Link header line holds several links: %q", l)
		}
		target, rel, ok := strings.Cut(l, ">; rel=")
		if !ok || !strings.HasPrefix(target, "<"+f.url) {
			f.t.Fatalf("bad Link header %q", l)
		}
		switch strings.Trim(rel, `"`) {
		case "self":
			p.self = strings.TrimPrefix(target, "<"+f.url)
		case "next":
			p.next = strings.TrimPrefix(target, "<"+f.url)
		}
	}
	if p.self == "" {
		f.t.Fatalf("no self link in %v", links)
	}
	return p
}

func (p logPage) types() []string {
	var ts []string
	for _, e := range p.events {
		ts = append(ts, e.EventType)
	}
	return ts
}

func (p logPage) logins() []string {
	var ls []string
	for _, e := range p.events {
		for _, t := range e.Target {
			if t.Type == "User" {
				ls = append(ls, t.AlternateID)
			}
		}
	}
	return ls
}

// logUsers creates users through the org with an actor, one
// user.lifecycle.create event each, logins prefix0.. prefixN-1.
func (f *fixture) logUsers(prefix string, n int) {
	f.t.Helper()
	for i := range n {
		if _, err := f.org.CreateUser(f.hookActor(), UserProfile{Login: fmt.Sprintf("%s%d", prefix, i)}, "ACTIVE", time.Time{}); err != nil {
			f.t.Fatal(err)
		}
	}
}

func logLogins(prefix string, from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("%s%d", prefix, i))
	}
	return s
}

func TestLogsPollingAlwaysHasANextLink(t *testing.T) {
	f := newFixture(t, NoLimits)
	newContract(t, f).check(f.ro, "GET", "/api/v1/logs?sortOrder=ASCENDING", nil)

	// Nothing logged yet: an empty page still links to where to poll next.
	p := f.getLogs(f.ro, "/api/v1/logs?sortOrder=ASCENDING&limit=2")
	if p.status != 200 || len(p.events) != 0 || p.next == "" {
		t.Fatalf("empty first poll: %d %s next=%q", p.status, p.body, p.next)
	}
	f.logUsers("a", 3)
	p = f.getLogs(f.ro, p.next)
	if !slices.Equal(p.logins(), logLogins("a", 0, 2)) || p.next == "" {
		t.Fatalf("first page %v next=%q", p.logins(), p.next)
	}
	p = f.getLogs(f.ro, p.next)
	if !slices.Equal(p.logins(), logLogins("a", 2, 3)) || p.next == "" {
		t.Fatalf("second page %v next=%q", p.logins(), p.next)
	}
	// The end: empty, and the next link stays at the same position.
	end := f.getLogs(f.ro, p.next)
	if len(end.events) != 0 || end.next != p.next {
		t.Fatalf("caught up: %s next=%q, want next=%q", end.body, end.next, p.next)
	}
	again := f.getLogs(f.ro, end.next)
	if len(again.events) != 0 || again.next != end.next {
		t.Fatalf("polling again: %s next=%q", again.body, again.next)
	}
	// Later, the same link returns only what is new.
	f.logUsers("b", 2)
	p = f.getLogs(f.ro, again.next)
	if !slices.Equal(p.logins(), logLogins("b", 0, 2)) || p.next == "" {
		t.Fatalf("after new events %v next=%q", p.logins(), p.next)
	}
	if p = f.getLogs(f.ro, p.next); len(p.events) != 0 || p.next == "" {
		t.Fatalf("caught up again: %s next=%q", p.body, p.next)
	}
}

func TestLogsBoundedQueriesLinkNextOnlyWhileMoreExist(t *testing.T) {
	f := newFixture(t, NoLimits)
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	logFreeze(f.org.clock, start)
	f.logUsers("u", 5)
	until := url.QueryEscape(start.Format(time.RFC3339))

	var got []string
	pages := 0
	for link := "/api/v1/logs?limit=2&until=" + until; link != ""; pages++ {
		p := f.getLogs(f.ro, link)
		got = append(got, p.logins()...)
		link = p.next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, logLogins("u", 0, 5)) || pages != 3 {
		t.Fatalf("bounded ascending: %v in %d pages", got, pages)
	}

	got, pages = nil, 0
	for link := "/api/v1/logs?limit=2&sortOrder=DESCENDING"; link != ""; pages++ {
		p := f.getLogs(f.ro, link)
		got = append(got, p.logins()...)
		link = p.next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	want := logLogins("u", 0, 5)
	slices.Reverse(want)
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("descending: %v in %d pages", got, pages)
	}
	// A bounded page that holds exactly the rest has no next link.
	if p := f.getLogs(f.ro, "/api/v1/logs?limit=5&until="+until); len(p.events) != 5 || p.next != "" {
		t.Fatalf("exact last page: %d events next=%q", len(p.events), p.next)
	}
	// limit above 1000 is clamped, not refused.
	if p := f.getLogs(f.ro, "/api/v1/logs?limit=5000"); p.status != 200 || len(p.events) != 5 {
		t.Fatalf("limit 5000: %d %s", p.status, p.body)
	}
}

func TestLogsSinceUntilAndRetention(t *testing.T) {
	f := newFixture(t, NoLimits)
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration, login string) {
		logFreeze(f.org.clock, t0.Add(d))
		f.logUsers(login, 1)
	}
	at(0, "t0-")
	at(time.Minute, "t1-")
	at(2*time.Minute, "t2-")
	at(3*time.Minute, "t3-")
	ts := func(d time.Duration) string { return url.QueryEscape(t0.Add(d).Format("2006-01-02T15:04:05.000Z")) }

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"t0-0", "t1-0", "t2-0", "t3-0"}},
		{"since=" + ts(time.Minute), []string{"t2-0", "t3-0"}},                              // since is exclusive
		{"until=" + ts(2*time.Minute), []string{"t0-0", "t1-0", "t2-0"}},                    // until is inclusive
		{"since=" + ts(0) + "&until=" + ts(2*time.Minute), []string{"t1-0", "t2-0"}},        // a window
		{"since=" + ts(2*time.Minute) + "&sortOrder=DESCENDING", []string{"t3-0"}},          // descending from the end
		{"until=" + ts(time.Minute) + "&sortOrder=DESCENDING", []string{"t1-0", "t0-0"}},    // descending from until
		{"since=2026-11-01T10:00:30Z&until=2026-11-01T10:02:30Z", []string{"t1-0", "t2-0"}}, // without milliseconds
	} {
		p := f.getLogs(f.ro, "/api/v1/logs?"+tc.query)
		if p.status != 200 || !slices.Equal(p.logins(), tc.want) {
			t.Errorf("%s: %d %v, want %v", tc.query, p.status, p.logins(), tc.want)
		}
	}

	// Eight days later the default since (7 days before now) hides them.
	logFreeze(f.org.clock, t0.Add(8*24*time.Hour))
	if p := f.getLogs(f.ro, "/api/v1/logs"); len(p.events) != 0 {
		t.Fatalf("default since: %v", p.logins())
	}
	if p := f.getLogs(f.ro, "/api/v1/logs?since="+ts(-time.Hour)); len(p.events) != 4 {
		t.Fatalf("explicit since: %v", p.logins())
	}
	// After 90 days they are gone, even for a since that may still reach back.
	logFreeze(f.org.clock, t0.Add(91*24*time.Hour))
	f.logUsers("late", 1)
	if p := f.getLogs(f.ro, "/api/v1/logs?since="+ts(-time.Hour)); !slices.Equal(p.logins(), []string{"late0"}) {
		t.Fatalf("after retention: %v", p.logins())
	}
	// since more than 180 days back is refused.
	logFreeze(f.org.clock, t0.Add(181*24*time.Hour))
	if p := f.getLogs(f.ro, "/api/v1/logs?since="+ts(0)); p.status != 400 || errorCode(p.body) != codeValidation || !strings.Contains(string(p.body), "180 days") {
		t.Fatalf("since 181 days back: %d %s", p.status, p.body)
	}
}

func TestLogsFilterAndKeywords(t *testing.T) {
	f := newFixture(t, NoLimits)
	g, err := f.org.CreateGroup(f.hookActor(), GroupOkta, "Finance", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ann, _ := f.org.CreateUser(f.hookActor(), UserProfile{Login: "ann@example.com", FirstName: "Ann", LastName: "Lee"}, "ACTIVE", time.Time{})
	bob, _ := f.org.CreateUser(f.hookActor(), UserProfile{Login: "bob@example.com", FirstName: "Bob", LastName: "Ray"}, "ACTIVE", time.Time{})
	f.org.AddMember(f.hookActor(), g.ID, ann.ID)
	other := LogActor{ID: "00uother", Type: "User", AlternateID: "other@example.com", DisplayName: "Other Admin"}
	f.org.AddMember(&other, g.ID, bob.ID)
	f.org.RemoveMember(f.hookActor(), g.ID, ann.ID)

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{`filter=eventType eq "group.user_membership.add"`, []string{"group.user_membership.add", "group.user_membership.add"}},
		{`filter=eventType eq "group.user_membership.add" or eventType eq "group.user_membership.remove"`,
			[]string{"group.user_membership.add", "group.user_membership.add", "group.user_membership.remove"}},
		{`filter=target.id eq "` + ann.ID + `"`, []string{"user.lifecycle.create", "group.user_membership.add", "group.user_membership.remove"}},
		{`filter=actor.id eq "00uother"`, []string{"group.user_membership.add"}},
		{`filter=target.id eq "` + g.ID + `" and not (actor.id eq "00uother")`,
			[]string{"group.lifecycle.create", "group.user_membership.add", "group.user_membership.remove"}},
		{`filter=eventType sw "user." and target.alternateId ew "@example.com"`, []string{"user.lifecycle.create", "user.lifecycle.create"}},
		{`filter=target.type eq "UserGroup" AND eventType co "remove"`, []string{"group.user_membership.remove"}},
		{`filter=eventType eq "no.such.type"`, nil},
		{`q=finance`, []string{"group.lifecycle.create", "group.user_membership.add", "group.user_membership.add", "group.user_membership.remove"}},
		{`q=finance bob`, []string{"group.user_membership.add"}},
		{`q=BOB@EXAMPLE.COM`, []string{"user.lifecycle.create", "group.user_membership.add"}},
		{`filter=actor.id eq "00uother"&q=ann`, nil},
	} {
		p := f.getLogs(f.ro, "/api/v1/logs?"+logQueryEscape(tc.query))
		if p.status != 200 || !slices.Equal(p.types(), tc.want) {
			t.Errorf("%s: %d %v, want %v (%s)", tc.query, p.status, p.types(), tc.want, p.body)
		}
	}
}

func TestLogsMatchOktasSpec(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	c.check(f.ro, "GET", "/api/v1/logs?sortOrder=ASCENDING", nil) // empty
	f.logUsers("spec", 2)
	c.check(f.ro, "GET", "/api/v1/logs?limit=1", nil)
	c.check(f.ro, "GET", "/api/v1/logs?"+logQueryEscape(`filter=eventType eq "user.lifecycle.create"`), nil)
}

// logQueryEscape escapes the values of a k=v&k=v query written plainly.
func logQueryEscape(q string) string {
	var parts []string
	for _, kv := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		parts = append(parts, k+"="+url.QueryEscape(v))
	}
	return strings.Join(parts, "&")
}

func TestLogsErrorAnswers(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	app, err := f.org.CreateUser(nil, UserProfile{Login: "appadmin@example.com"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignRole(nil, "USER", app.ID, "APP_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := f.org.AddToken(app.ID, "tok-app"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 41)
	for _, tc := range []struct {
		name, token, method, query string
		status                     int
		code                       string
	}{
		{"bad token", "nope", "GET", "", 401, codeInvalidToken},
		{"app admin cannot read logs", "tok-app", "GET", "", 403, codeForbidden},
		{"POST", f.super, "POST", "", 405, codeMethodNotAllowd},
		{"DELETE", f.super, "DELETE", "", 405, codeMethodNotAllowd},
		{"since not a time", f.ro, "GET", "since=yesterday", 400, codeValidation},
		{"until not a time", f.ro, "GET", "until=2026-13-45", 400, codeValidation},
		{"since 181 days back", f.ro, "GET", "since=2026-05-01T00:00:00.000Z", 400, codeValidation},
		{"since after until", f.ro, "GET", "since=2026-10-31T00:00:00Z&until=2026-10-30T00:00:00Z", 400, codeValidation},
		{"sortOrder", f.ro, "GET", "sortOrder=NEWEST", 400, codeValidation},
		{"limit", f.ro, "GET", "limit=many", 400, codeValidation},
		{"after", f.ro, "GET", "after=not-a-cursor", 400, codeValidation},
		{"filter syntax", f.ro, "GET", "filter=" + url.QueryEscape(`eventType eq`), 400, codeValidation},
		{"filter attribute", f.ro, "GET", "filter=" + url.QueryEscape(`password eq "x"`), 400, codeValidation},
		{"filter operator", f.ro, "GET", "filter=" + url.QueryEscape(`eventType like "x"`), 400, codeValidation},
		{"filter parenthesis", f.ro, "GET", "filter=" + url.QueryEscape(`(eventType eq "x"`), 400, codeValidation},
		{"filter string", f.ro, "GET", "filter=" + url.QueryEscape(`eventType eq "x`), 400, codeValidation},
		{"filter trailing", f.ro, "GET", "filter=" + url.QueryEscape(`eventType eq "x" "y"`), 400, codeValidation},
		{"q keyword too long", f.ro, "GET", "q=" + long, 400, codeValidation},
		{"q too many keywords", f.ro, "GET", "q=" + url.QueryEscape("a b c d e f g h i j k"), 400, codeValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/v1/logs"
			if tc.query != "" {
				path += "?" + tc.query
			}
			check := c.check
			if tc.status == http.StatusMethodNotAllowed {
				check = f.do // the spec has no such operation to check against
			}
			resp, b := check(tc.token, tc.method, path, nil)
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
	// Every admin token of the fixture reads the System Log.
	for _, tok := range []string{f.ro, f.appgr, f.super} {
		if p := f.getLogs(tok, "/api/v1/logs"); p.status != 200 {
			t.Errorf("token %s: %d %s", tok, p.status, p.body)
		}
	}
}
