package ratelimit

import (
	"net/http"
	"strings"
)

// Okta's rate-limit buckets (shared/okta/FACTS.md, "Rate limits").
const (
	// BucketApps is /api/v1/apps and everything under it except BucketAppByID.
	BucketApps = "apps"
	// BucketAppByID is /api/v1/apps/{id} only.
	BucketAppByID = "app_by_id"
	// BucketGroups is /api/v1/groups and its sub-paths except BucketGroupByID.
	BucketGroups = "groups"
	// BucketGroupByID is /api/v1/groups/{id} only.
	BucketGroupByID = "group_by_id"
	// BucketUsers is GET or POST /api/v1/users.
	BucketUsers = "users"
	// BucketUserByID is GET /api/v1/users/{idOrLogin}.
	BucketUserByID = "user_by_id"
	// BucketUserWrites is POST, PUT or DELETE /api/v1/users/{id}.
	BucketUserWrites = "user_writes"
	// BucketLogs is /api/v1/logs.
	BucketLogs = "logs"
	// BucketOther is every other /api/v1 path (iam, users/{id}/roles, eventHooks, ...).
	BucketOther = "other"
)

// DefaultConcurrency is Okta's Workforce limit of requests in flight per org.
const DefaultConcurrency = 75

// WorkforceLimits returns Okta's Workforce per-minute limits by bucket: the
// pace used until a response tells the real ceiling of an org's bucket. A
// fresh map each call, so a caller may change it without affecting others.
func WorkforceLimits() map[string]int {
	return map[string]int{
		BucketApps: 100, BucketAppByID: 500, BucketGroups: 500, BucketGroupByID: 1000,
		BucketUsers: 600, BucketUserByID: 2000, BucketUserWrites: 600, BucketLogs: 120, BucketOther: 1200,
	}
}

// BucketOf returns the Okta rate-limit bucket of a request. The path is the
// URL path only (no query); a trailing slash is ignored.
//
// The simulator (libs/oktasim) classifies requests with code of its own on
// purpose: it plays Okta, and a client that shared its classification would
// never be caught getting a bucket wrong.
func BucketOf(method, path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return BucketOther
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	switch parts[0] {
	case "apps":
		if len(parts) == 2 {
			return BucketAppByID
		}
		return BucketApps
	case "groups":
		if len(parts) == 2 {
			return BucketGroupByID
		}
		return BucketGroups
	case "users":
		switch {
		case len(parts) == 1 && (method == http.MethodGet || method == http.MethodPost):
			return BucketUsers
		case len(parts) == 2 && method == http.MethodGet:
			return BucketUserByID
		case len(parts) == 2 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodDelete):
			return BucketUserWrites
		}
	case "logs":
		return BucketLogs
	}
	return BucketOther
}
