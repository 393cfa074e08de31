package executor

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestChecksCachedWithinTTL: requests about the same user and group within
// Config.CheckTTL read each once; an inactive user is read again for every
// request (a refusal is never stale); and once the TTL has passed, a user
// suspended meanwhile is read again and refused.
func TestChecksCachedWithinTTL(t *testing.T) {
	cnt := &counter{}
	var ahead atomic.Int64 // how far the executor's clock is ahead of the wall clock
	e := newEnv(t, envOptions{
		httpWrap: func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt },
		cfg:      Config{CheckTTL: time.Hour},
		now:      func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
	})
	g0, g1, g2 := e.org.oktaGroups[0], e.org.oktaGroups[1], e.org.oktaGroups[2]
	u := e.freeUser(t, g0, "")
	for _, g := range []string{g1, g2} {
		if contains(e.org.members[g], u) {
			t.Skipf("user %s is already a member of %s in this org", u, g)
		}
	}
	user, group := "/api/v1/users/"+u, "/api/v1/groups/"+g0
	wantSuccess(t, e.do(t, newRequest("cached-1", "c1", grant, membership(u, g0))), false)
	wantSuccess(t, e.do(t, newRequest("cached-2", "c1", revoke, membership(u, g0))), false)
	wantSuccess(t, e.do(t, newRequest("cached-3", "c1", grant, membership(u, g1))), false)
	if n := cnt.calls(http.MethodGet, user); n != 1 {
		t.Errorf("the user was read %d times for three requests within the TTL, want 1", n)
	}
	if n := cnt.calls(http.MethodGet, group); n != 1 {
		t.Errorf("group %s was read %d times for two requests within the TTL, want 1", g0, n)
	}

	// An inactive user is never remembered: each grant reads it and is refused.
	inactiveUser := "/api/v1/users/" + e.org.suspended
	for _, id := range []string{"suspended-1", "suspended-2"} {
		wantFailure(t, e.do(t, newRequest(id, "c1", grant, membership(e.org.suspended, g0))), reasons.inactive, "SUSPENDED")
	}
	if n := cnt.calls(http.MethodGet, inactiveUser); n != 2 {
		t.Errorf("the suspended user was read %d times for two grants, want 2", n)
	}

	// Suspended in Okta after the checks remembered it: once the TTL has
	// passed, the next grant reads it again and is refused.
	if err := e.sim.Org.SetUserStatus(e.org.simAdmin, u, "SUSPENDED"); err != nil {
		t.Fatal(err)
	}
	ahead.Store(int64(time.Hour + time.Second))
	wantFailure(t, e.do(t, newRequest("after-ttl", "c1", grant, membership(u, g2))), reasons.inactive, "SUSPENDED")
	if n := cnt.calls(http.MethodGet, user); n != 2 {
		t.Errorf("the user was read %d times in all, want 2 (once more after the TTL)", n)
	}
	if n := cnt.writes(); n != 3 {
		t.Errorf("%d writes to Okta, want 3 (the refusals wrote nothing)", n)
	}
}

// TestChecksUncachedWithNegativeTTL: a negative CheckTTL reads the user and
// the group for every request.
func TestChecksUncachedWithNegativeTTL(t *testing.T) {
	cnt := &counter{}
	e := newEnv(t, envOptions{
		httpWrap: func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt },
		cfg:      Config{CheckTTL: -1},
	})
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	wantSuccess(t, e.do(t, newRequest("uncached-1", "c1", grant, membership(u, g))), false)
	wantSuccess(t, e.do(t, newRequest("uncached-2", "c1", revoke, membership(u, g))), false)
	if n := cnt.calls(http.MethodGet, "/api/v1/users/"+u); n != 2 {
		t.Errorf("the user was read %d times for two requests, want 2", n)
	}
	if n := cnt.calls(http.MethodGet, "/api/v1/groups/"+g); n != 2 {
		t.Errorf("the group was read %d times for two requests, want 2", n)
	}
}
