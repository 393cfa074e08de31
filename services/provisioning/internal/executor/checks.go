package executor

import (
	"context"
	"sync"
	"time"

	"github.com/accessbus/accessbus/libs/okta"
)

// DefaultCheckTTL is Config.CheckTTL's default.
const DefaultCheckTTL = 2 * time.Second

// checkCache remembers for a short time (Config.CheckTTL) the users, groups
// and apps the checks before a write found usable, per connector and org,
// so that a burst of requests about the same user or group (onboarding a
// user into many groups, adding many users to one group) reads each once
// rather than once per request: two of a membership's five Okta calls.
//
// Only what lets a request through is kept: a user that is neither
// DEPROVISIONED nor SUSPENDED, an ACTIVE app, and any group (its type,
// which decides whether it is writable, never changes). A missing or
// inactive object is read again by every request, so a refusal is never
// stale. What can be stale, by at most the TTL, is a user or app that
// became inactive, or an object deleted, after a request found it usable:
// a write about a deleted object fails in Okta (NOT_FOUND), a revoke from
// a deleted group finds nothing to remove (a no-op), a deactivated user's
// app assignment is refused by Okta (E0000117, INACTIVE), and a group
// membership of a user deactivated within the TTL is written as asked,
// which the targeted sync that follows every success then reports.
type checkCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]checked
	sweepAt time.Time
}

// checked is one remembered object, one of user, group or app set.
type checked struct {
	until time.Time
	user  *okta.User
	group *okta.Group
	app   *okta.App
}

// maxChecked bounds the entries kept between sweeps of the expired ones.
const maxChecked = 100_000

func newCheckCache(ttl time.Duration, now func() time.Time) *checkCache {
	return &checkCache{ttl: ttl, now: now, entries: map[string]checked{}}
}

// checkScope names a connector's org in the cache's keys: a connector
// moved to another org starts afresh.
func checkScope(connector string, cl *okta.Client) string {
	return connector + "\x00" + cl.OrgURL() + "\x00"
}

func (c *checkCache) get(key string) (checked, bool) {
	if c == nil {
		return checked{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return checked{}, false
	}
	if !c.now().Before(e.until) {
		delete(c.entries, key)
		return checked{}, false
	}
	return e, true
}

func (c *checkCache) put(key string, e checked) {
	if c == nil {
		return
	}
	now := c.now()
	e.until = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxChecked || !now.Before(c.sweepAt) {
		for k, old := range c.entries {
			if !now.Before(old.until) {
				delete(c.entries, k)
			}
		}
		c.sweepAt = now.Add(c.ttl)
		if len(c.entries) >= maxChecked {
			return // all live: this one is read again next time
		}
	}
	c.entries[key] = e
}

// user returns the user, from the cache when a request found it usable
// within the TTL.
func (r *run) user(ctx context.Context, id string) (okta.User, error) {
	key := r.scope + "u\x00" + id
	if e, ok := r.e.checks.get(key); ok && e.user != nil {
		return *e.user, nil
	}
	u, err := r.cl.GetUser(ctx, id)
	if err == nil && !inactive(u.Status) {
		r.e.checks.put(key, checked{user: &u})
	}
	return u, err
}

// group returns the group, from the cache when read within the TTL.
func (r *run) group(ctx context.Context, id string) (okta.Group, error) {
	key := r.scope + "g\x00" + id
	if e, ok := r.e.checks.get(key); ok && e.group != nil {
		return *e.group, nil
	}
	g, err := r.cl.GetGroup(ctx, id, false)
	if err == nil {
		r.e.checks.put(key, checked{group: &g})
	}
	return g, err
}

// app returns the app, from the cache when a request found it ACTIVE
// within the TTL.
func (r *run) app(ctx context.Context, id string) (okta.App, error) {
	key := r.scope + "a\x00" + id
	if e, ok := r.e.checks.get(key); ok && e.app != nil {
		return *e.app, nil
	}
	a, err := r.cl.GetApp(ctx, id)
	if err == nil && a.Status == "ACTIVE" {
		r.e.checks.put(key, checked{app: &a})
	}
	return a, err
}
