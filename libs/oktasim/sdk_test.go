package oktasim

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"
)

// sdkClient is okta-sdk-golang/v2 configured explicitly (no cache, no
// environment or okta.yaml can change it) against the fixture.
func sdkClient(t *testing.T, f *fixture, token string, opts ...okta.ConfigSetter) *okta.Client {
	t.Helper()
	all := append([]okta.ConfigSetter{
		okta.WithOrgUrl(f.url),
		okta.WithToken(token),
		okta.WithCache(false),
		okta.WithTestingDisableHttpsCheck(true),
		okta.WithRequestTimeout(30),
		okta.WithRateLimitMaxRetries(2),
		okta.WithRateLimitMaxBackOff(30),
		okta.WithUserAgentExtra("accessbus-oktasim-test"),
		okta.WithHttpClientPtr(&http.Client{Timeout: 30 * time.Second}),
	}, opts...)
	_, c, err := okta.NewClient(context.Background(), all...)
	if err != nil {
		t.Fatalf("okta client: %v", err)
	}
	return c
}

func addUsers(t *testing.T, o *Org, n int) []*User {
	t.Helper()
	users := make([]*User, 0, n)
	for i := range n {
		u, err := o.CreateUser(nil, UserProfile{Login: fmt.Sprintf("user%04d@example.com", i), Email: fmt.Sprintf("user%04d@example.com", i), FirstName: "U", LastName: fmt.Sprint(i)}, "ACTIVE", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	return users
}

func TestSDKPagesUsersToTheEnd(t *testing.T) {
	f := newFixture(t, NoLimits)
	addUsers(t, f.org, 450)
	c := sdkClient(t, f, f.ro)
	ctx := context.Background()
	users, resp, err := c.User.ListUsers(ctx, query.NewQueryParams(query.WithLimit(200)))
	if err != nil {
		t.Fatal(err)
	}
	pages := 1
	for resp.HasNextPage() {
		var page []*okta.User
		if resp, err = resp.Next(ctx, &page); err != nil {
			t.Fatal(err)
		}
		users = append(users, page...)
		pages++
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u.Id] {
			t.Fatalf("user %s listed twice", u.Id)
		}
		seen[u.Id] = true
	}
	if len(users) != 453 || pages != 3 {
		t.Fatalf("got %d users in %d pages, want 453 in 3", len(users), pages)
	}
}

func TestSDKGroupMembersStayCorrectWhileMembershipChanges(t *testing.T) {
	f := newFixture(t, NoLimits)
	users := addUsers(t, f.org, 2600)
	g, err := f.org.CreateGroup(nil, GroupOkta, "big", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users[:2500] {
		if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	c := sdkClient(t, f, f.ro)
	ctx := context.Background()
	members, resp, err := c.Group.ListGroupUsers(ctx, g.ID, query.NewQueryParams(query.WithLimit(1000)))
	if err != nil {
		t.Fatal(err)
	}
	// Between pages: remove members not yet listed and add new ones.
	removed := map[string]bool{}
	for _, u := range users[1500:1600] {
		if _, err := f.org.RemoveMember(nil, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		removed[u.ID] = true
	}
	for _, u := range users[2500:] {
		if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	for resp.HasNextPage() {
		var page []*okta.User
		if resp, err = resp.Next(ctx, &page); err != nil {
			t.Fatal(err)
		}
		members = append(members, page...)
	}
	seen := map[string]int{}
	for _, m := range members {
		seen[m.Id]++
	}
	for _, u := range users[:2500] {
		if removed[u.ID] {
			if seen[u.ID] != 0 {
				t.Errorf("member removed before its page was read is listed: %s", u.ID)
			}
			continue
		}
		if seen[u.ID] != 1 {
			t.Errorf("member present all along listed %d times: %s", seen[u.ID], u.ID)
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
	// Members added during paging come after the cursor, so they are listed.
	for _, u := range users[2500:] {
		if seen[u.ID] != 1 {
			t.Errorf("member added during paging listed %d times: %s", seen[u.ID], u.ID)
		}
	}
}

func TestSDKRetriesA429WithItsOwnBackoff(t *testing.T) {
	// Two requests a window, and a window of 60 simulated seconds lasting
	// one real second: the SDK waits Reset-Date+1 (capped at 2 s here) and
	// its retry lands in a new window.
	hsFixture := newScaledFixture(t, RateLimits{Name: "tiny", Concurrency: 75, PerMinute: map[string]int{BucketUsersList: 2}}, 60)
	c := sdkClient(t, hsFixture, hsFixture.ro, okta.WithRateLimitMaxBackOff(2))
	ctx := context.Background()
	for i := range 3 {
		if _, _, err := c.User.ListUsers(ctx, query.NewQueryParams(query.WithLimit(1))); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := hsFixture.srv.Counts().Limited[BucketUsersList]; got < 1 {
		t.Fatalf("no request was limited (%d), so the retry was not exercised", got)
	}
}
