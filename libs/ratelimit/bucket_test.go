package ratelimit

import (
	"errors"
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	cases := []struct {
		method, path, want string
	}{
		{"GET", "/api/v1/apps", BucketApps},
		{"POST", "/api/v1/apps", BucketApps},
		{"GET", "/api/v1/apps/0oa1/users", BucketApps},
		{"GET", "/api/v1/apps/0oa1/groups/00g1", BucketApps},
		{"GET", "/api/v1/apps/0oa1", BucketAppByID},
		{"PUT", "/api/v1/apps/0oa1/", BucketAppByID},
		{"GET", "/api/v1/groups", BucketGroups},
		{"GET", "/api/v1/groups/00g1/users", BucketGroups},
		{"PUT", "/api/v1/groups/00g1/users/00u1", BucketGroups},
		{"GET", "/api/v1/groups/00g1/roles", BucketGroups},
		{"GET", "/api/v1/groups/00g1", BucketGroupByID},
		{"GET", "/api/v1/users", BucketUsers},
		{"POST", "/api/v1/users", BucketUsers},
		{"GET", "/api/v1/users/00u1", BucketUserByID},
		{"GET", "/api/v1/users/me", BucketUserByID},
		{"GET", "/api/v1/users/someone@example.com", BucketUserByID},
		{"POST", "/api/v1/users/00u1", BucketUserWrites},
		{"PUT", "/api/v1/users/00u1", BucketUserWrites},
		{"DELETE", "/api/v1/users/00u1", BucketUserWrites},
		{"GET", "/api/v1/users/00u1/roles", BucketOther},
		{"POST", "/api/v1/users/00u1/lifecycle/deactivate", BucketOther},
		{"DELETE", "/api/v1/users", BucketOther},
		{"GET", "/api/v1/logs", BucketLogs},
		{"GET", "/api/v1/iam/roles", BucketOther},
		{"GET", "/api/v1/eventHooks", BucketOther},
		{"GET", "/oauth2/v1/keys", BucketOther},
	}
	for _, c := range cases {
		if got := BucketOf(c.method, c.path); got != c.want {
			t.Errorf("BucketOf(%s %s) = %s, want %s", c.method, c.path, got, c.want)
		}
	}
	for _, c := range cases {
		if _, ok := WorkforceLimits()[c.want]; !ok {
			t.Errorf("bucket %s has no Workforce default", c.want)
		}
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	bad := []Options{
		{Share: -0.1},
		{Share: 1.5},
		{Window: -1},
		{TimeScale: -2},
		{Concurrency: -1},
		{CatchUp: -1},
		{Margin: -time.Millisecond},
		{DefaultLimits: map[string]int{BucketUsers: 0}},
	}
	for _, o := range bad {
		if _, err := New(NewMemoryStore(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("New(%+v) error = %v, want ErrInvalidOptions", o, err)
		}
	}
	if _, err := New(nil, Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("New(nil store) error = %v, want ErrInvalidOptions", err)
	}
	b, err := New(NewMemoryStore(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.share != 0.5 || b.period != 60_000_000_000 || b.maxSlots != 37 {
		t.Errorf("defaults: share %v period %v slots %d, want 0.5, 1m, 37", b.share, b.period, b.maxSlots)
	}
	if _, err := b.Acquire(t.Context(), "org", "nope"); !errors.Is(err, ErrUnknownBucket) {
		t.Errorf("unknown bucket error = %v", err)
	}
	if _, err := b.Acquire(t.Context(), "", BucketUsers); !errors.Is(err, ErrNoOrg) {
		t.Errorf("empty org error = %v", err)
	}
}
