package oktasim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"
)

// sdkHookReceiver is a real HTTP event-hook receiver that answers the
// verification challenge and records every delivered event.
type sdkHookReceiver struct {
	mu     sync.Mutex
	events []map[string]any
	auth   []string
	got    chan struct{}
}

func newSDKHookReceiver(t *testing.T) (*sdkHookReceiver, string) {
	r := &sdkHookReceiver{got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if ch := req.Header.Get("x-okta-verification-challenge"); req.Method == http.MethodGet && ch != "" {
			_ = json.NewEncoder(w).Encode(map[string]string{"verification": ch})
			return
		}
		var body struct {
			Data struct {
				Events []map[string]any `json:"events"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, body.Data.Events...)
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		r.got <- struct{}{}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// TestSDKWriteIsLoggedAndDeliveredToTheHook registers a hook, makes a
// membership change through the SDK, and finds it in the System Log (read
// through the SDK) and at the receiver.
func TestSDKWriteIsLoggedAndDeliveredToTheHook(t *testing.T) {
	f := newFixture(t, Workforce)
	users := addUsers(t, f.org, 1)
	g, err := f.org.CreateGroup(nil, GroupOkta, "engineering", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	recv, url := newSDKHookReceiver(t)
	c := sdkClient(t, f, f.super)
	ctx := context.Background()
	hook, _, err := c.EventHook.CreateEventHook(ctx, okta.EventHook{
		Name:   "accessbus",
		Events: &okta.EventSubscriptions{Type: "EVENT_TYPE", Items: []string{"group.user_membership.add", "group.user_membership.remove"}},
		Channel: &okta.EventHookChannel{Type: "HTTP", Version: "1.0.0", Config: &okta.EventHookChannelConfig{
			Uri:        url,
			AuthScheme: &okta.EventHookChannelConfigAuthScheme{Type: "HEADER", Key: "Authorization", Value: "hook-secret"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.EventHook.ActivateEventHook(ctx, hook.Id); err != nil {
		t.Fatal(err)
	}
	verified, _, err := c.EventHook.VerifyEventHook(ctx, hook.Id)
	if err != nil || verified.VerificationStatus != "VERIFIED" {
		t.Fatalf("verify: %v %+v", err, verified)
	}

	// The write, through the SDK with the app+group admin token.
	appgr := sdkClient(t, f, f.appgr)
	if _, err := appgr.Group.AddUserToGroup(ctx, g.ID, users[0].ID); err != nil {
		t.Fatal(err)
	}
	// Its System Log event.
	logs, _, err := c.LogEvent.GetLogs(ctx, query.NewQueryParams(query.WithFilter(`eventType eq "group.user_membership.add"`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 || !hasTarget(logs[0].Target, users[0].ID, "User") || !hasTarget(logs[0].Target, g.ID, "UserGroup") {
		t.Fatalf("System Log: %d events %+v", len(logs), logs)
	}
	// Its delivery.
	select {
	case <-recv.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no hook delivery within 5 s")
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.events) != 1 || recv.events[0]["uuid"] != logs[0].Uuid || recv.events[0]["eventType"] != "group.user_membership.add" {
		t.Fatalf("delivered %v, logged %s", recv.events, logs[0].Uuid)
	}
	if recv.auth[0] != "hook-secret" {
		t.Fatalf("delivery authorization %q", recv.auth[0])
	}
}

func hasTarget(ts []*okta.LogTarget, id, typ string) bool {
	for _, t := range ts {
		if t.Id == id && t.Type == typ {
			return true
		}
	}
	return false
}

// TestSDKPermissionMatrix checks FACTS.md's permission table cell by cell
// through the SDK: reads for every token, membership and assignment writes
// for the app+group admin and the super admin, roles for the super admin.
func TestSDKPermissionMatrix(t *testing.T) {
	f := newFixture(t, NoLimits)
	users := addUsers(t, f.org, 1)
	u := users[0]
	g, _ := f.org.CreateGroup(nil, GroupOkta, "g", "", "", time.Time{})
	app, err := f.org.CreateApp(nil, AppSpec{Name: "bookmark", Label: "Wiki", SignOnMode: "BOOKMARK", Status: "ACTIVE"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type cell func(c *okta.Client) (*okta.Response, error)
	drop := func(_ any, r *okta.Response, err error) (*okta.Response, error) { return r, err }
	rows := []struct {
		name string
		call cell
		// allowed for read-only, app+group admin, super admin
		ro, ag, su bool
	}{
		{"list users", func(c *okta.Client) (*okta.Response, error) { return drop(c.User.ListUsers(ctx, nil)) }, true, true, true},
		{"list groups", func(c *okta.Client) (*okta.Response, error) { return drop(c.Group.ListGroups(ctx, nil)) }, true, true, true},
		{"list group members", func(c *okta.Client) (*okta.Response, error) { return drop(c.Group.ListGroupUsers(ctx, g.ID, nil)) }, true, true, true},
		{"list apps", func(c *okta.Client) (*okta.Response, error) { return drop(c.Application.ListApplications(ctx, nil)) }, true, true, true},
		{"list app users", func(c *okta.Client) (*okta.Response, error) {
			return drop(c.Application.ListApplicationUsers(ctx, app.ID, nil))
		}, true, true, true},
		{"read System Log", func(c *okta.Client) (*okta.Response, error) { return drop(c.LogEvent.GetLogs(ctx, nil)) }, true, true, true},
		{"add group member", func(c *okta.Client) (*okta.Response, error) { return c.Group.AddUserToGroup(ctx, g.ID, u.ID) }, false, true, true},
		{"remove group member", func(c *okta.Client) (*okta.Response, error) { return c.Group.RemoveUserFromGroup(ctx, g.ID, u.ID) }, false, true, true},
		{"assign app", func(c *okta.Client) (*okta.Response, error) {
			return drop(c.Application.AssignUserToApplication(ctx, app.ID, okta.AppUser{Id: u.ID, Scope: "USER"}))
		}, false, true, true},
		{"unassign app", func(c *okta.Client) (*okta.Response, error) {
			return c.Application.DeleteApplicationUser(ctx, app.ID, u.ID, nil)
		}, false, true, true},
		{"list a user's admin roles", func(c *okta.Client) (*okta.Response, error) {
			return drop(c.User.ListAssignedRolesForUser(ctx, f.admin.ID, nil))
		}, false, false, true},
		{"list custom roles", func(c *okta.Client) (*okta.Response, error) {
			req, err := c.CloneRequestExecutor().WithAccept("application/json").NewRequest("GET", "/api/v1/iam/roles", nil)
			if err != nil {
				return nil, err
			}
			var out map[string]any
			return c.CloneRequestExecutor().Do(ctx, req, &out)
		}, false, false, true},
	}
	tokens := []struct {
		name, token string
	}{{"read-only admin", f.ro}, {"app+group admin", f.appgr}, {"super admin", f.super}}
	for _, tk := range tokens {
		c := sdkClient(t, f, tk.token)
		for _, row := range rows {
			want := map[string]bool{f.ro: row.ro, f.appgr: row.ag, f.super: row.su}[tk.token]
			resp, err := row.call(c)
			if want {
				if err != nil {
					t.Errorf("%s may %s: %v", tk.name, row.name, err)
				}
				continue
			}
			var oe *okta.Error
			if !errors.As(err, &oe) || oe.ErrorCode != codeForbidden || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s may not %s: got %v (response %v), want 403 %s", tk.name, row.name, err, statusOf(resp), codeForbidden)
			}
		}
	}
}

func statusOf(r *okta.Response) any {
	if r == nil || r.Response == nil {
		return nil
	}
	return r.StatusCode
}
