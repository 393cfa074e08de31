package oktasim

// MinCalls is the fewest API calls that read an org's access picture, by
// bucket: what a full sync cannot do with less, so that a client's calls
// over it measure the client's own waste.
type MinCalls struct {
	// ByBucket is the minimum per bucket (the bucket names of this package).
	ByBucket map[string]int64 `json:"by_bucket"`
	// Total is the sum of ByBucket.
	Total int64 `json:"total"`
}

// MinAPICalls returns the fewest calls that read everything a full sync of
// the org reads with a super admin token, every list at its maximum page
// size (shared/okta/FACTS.md):
//
//   - users, DEPROVISIONED included: ceil(users/200) pages;
//   - groups with stats: ceil(groups/10000) pages;
//   - each group's members: ceil(members/1000) pages, none for a group whose
//     stats say it has no member (expand=stats already told);
//   - apps, INACTIVE included: ceil(apps/200) pages;
//   - each app's users, ceil(n/500) pages, and its groups, ceil(n/200) pages,
//     at least one page each: Okta tells no assignment count for apps;
//   - roles: the role assignees, ceil(assignees/100) pages; each assignee's
//     roles (one call); each group's roles (one call: no list tells which
//     groups hold roles).
//
// A list that comes back empty still costs its one call. The simulator
// announces a next page only when one more item exists, so a full last
// page costs nothing more. Calls that read nothing of the org (the token's
// capability probe, /users/me) are not included: they are a client's
// overhead and show in its ratio.
func (o *Org) MinAPICalls() MinCalls {
	o.mu.RLock()
	defer o.mu.RUnlock()
	by := map[string]int64{}
	by[BucketUsersList] += pages(o.users.len(), 200)
	by[BucketGroups] += pages(o.groups.len(), 10000)
	o.groups.each(func(id string, g *Group) bool {
		if n := g.members.len(); n > 0 {
			by[BucketGroups] += pages(n, 1000)
		}
		by[BucketGroups]++ // the group's roles
		return true
	})
	by[BucketApps] += pages(o.apps.len(), 200)
	o.apps.each(func(_ string, a *App) bool {
		by[BucketApps] += pages(a.users.len(), 500) + pages(a.groups.len(), 200)
		return true
	})
	holders := 0
	for id := range o.roleHolders() {
		if _, ok := o.users.get(id); ok {
			holders++
		}
	}
	by[BucketOther] += pages(holders, 100) + int64(holders)
	var total int64
	for _, n := range by {
		total += n
	}
	return MinCalls{ByBucket: by, Total: total}
}

// pages is how many pages of size max hold n items; an empty list is one
// (empty) page.
func pages(n, max int) int64 {
	if n <= 0 {
		return 1
	}
	return int64((n + max - 1) / max)
}
