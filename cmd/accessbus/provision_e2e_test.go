package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// demoAPI calls the demo org's API as its Super Administrator.
type demoAPI struct {
	url, token string
}

func newDemoAPI(t *testing.T, dataDir string) demoAPI {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, demoTokensFile))
	if err != nil {
		t.Fatal(err)
	}
	var demo struct {
		URL        string `json:"url"`
		SuperAdmin string `json:"super_admin"`
	}
	if err := json.Unmarshal(b, &demo); err != nil || demo.SuperAdmin == "" {
		t.Fatalf("demo file: %v %s", err, b)
	}
	return demoAPI{url: demo.URL, token: demo.SuperAdmin}
}

func (d demoAPI) get(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.url+path, nil)
	req.Header.Set("Authorization", "SSWS "+d.token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

type idOnly struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// pickFree returns an OKTA_GROUP, an active user outside it, an active app
// and an active user not assigned to it.
func (d demoAPI) pickFree(t *testing.T) (group, member, app, assignee string) {
	t.Helper()
	var groups, users, apps, members, appUsers []idOnly
	d.get(t, "/api/v1/groups?filter="+urlQuery(`type eq "OKTA_GROUP"`)+"&limit=5", &groups)
	d.get(t, "/api/v1/users?limit=200", &users)
	d.get(t, "/api/v1/apps?filter="+urlQuery(`status eq "ACTIVE"`)+"&limit=5", &apps)
	group, app = groups[0].ID, apps[0].ID
	d.get(t, "/api/v1/groups/"+group+"/users?limit=1000", &members)
	d.get(t, "/api/v1/apps/"+app+"/users?limit=500", &appUsers)
	in := func(list []idOnly, id string) bool {
		return slices.ContainsFunc(list, func(x idOnly) bool { return x.ID == id })
	}
	for _, u := range users[3:] { // past the fixture admins
		if u.Status != "ACTIVE" {
			continue
		}
		if member == "" && !in(members, u.ID) {
			member = u.ID
		} else if assignee == "" && !in(appUsers, u.ID) && u.ID != member {
			assignee = u.ID
		}
	}
	if member == "" || assignee == "" {
		t.Fatal("no free user in the demo org")
	}
	return group, member, app, assignee
}

// TestProvisioningThroughDev: accessbus dev --demo carries out provisioning
// requests published on the bus: a time-bound membership and an app
// assignment are granted in Okta and show up on access.demo.> (through the
// targeted resync the provisioning service asks for); a full sync in
// between leaves the time-bound grant time-bound; at its expiry the
// membership is revoked and its removal shows up too.
func TestProvisioningThroughDev(t *testing.T) {
	t.Setenv(envAPIKey, "") // the commands use the key accessbus dev writes in dir
	dir := t.TempDir()
	ctx := context.Background()
	addr, natsURL, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true, demoTimeScale: 50})
	server := "http://" + addr
	waitConnected(t, server, dir, "demo", logs)
	group, member, app, assignee := newDemoAPI(t, dir).pickFree(t)

	js := devJetStream(t, natsURL)
	follow := func(stream, filter string) jetstream.Consumer {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverNewPolicy})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	access := follow("ACCESS", "access.demo.grant.>")
	results := follow("PROVISIONING", "provisioning.demo.result.>")
	publish := func(r *eventsv1.ProvisioningRequest) {
		t.Helper()
		b, _ := proto.Marshal(r)
		m := nats.NewMsg("provisioning.demo.request")
		m.Data = b
		m.Header.Set("Nats-Msg-Id", "e2e-"+r.GetRequestId())
		m.Header.Set(bus.HeaderPayloadType, string(r.ProtoReflect().Descriptor().FullName()))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// waitFor reads c until each of matches has returned true for a
	// message, in any order (the two grants' targeted syncs may publish
	// in either order).
	waitFor := func(c jetstream.Consumer, what string, within time.Duration, matches ...func(subject string, data []byte) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			msg, err := c.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
			if err != nil {
				continue
			}
			for i, match := range matches {
				if match(msg.Subject(), msg.Data()) {
					matches = slices.Delete(matches, i, i+1)
					break
				}
			}
			if len(matches) == 0 {
				return
			}
		}
		t.Fatalf("no %s within %s\n%s", what, within, logs.String())
	}
	result := func(id string) func(string, []byte) bool {
		return func(subject string, data []byte) bool {
			res := &eventsv1.ProvisioningResult{}
			if proto.Unmarshal(data, res) != nil || res.GetRequestId() != id {
				return false
			}
			if res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED {
				t.Fatalf("request %s: %s %s: %s", id, res.GetOutcome(), res.GetFailureReason(), res.GetMessage())
			}
			return true
		}
	}
	grantEvent := func(verb, key string) func(string, []byte) bool {
		return func(subject string, data []byte) bool {
			return strings.HasSuffix(subject, "."+verb) && strings.Contains(string(data), key)
		}
	}

	membershipKey := fmt.Sprintf("group_membership/%s/%s", group, member)
	publish(&eventsv1.ProvisioningRequest{
		RequestId: "e2e-member", ConnectorId: "demo", Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT,
		Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
			GroupMembership: &eventsv1.GroupMembershipTarget{UserId: member, GroupId: group}}},
		RequestedBy: "e2e", Reason: "a test", Expiry: &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(8 * time.Second)},
	})
	publish(&eventsv1.ProvisioningRequest{
		RequestId: "e2e-app", ConnectorId: "demo", Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT,
		Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{
			AppAssignment: &eventsv1.AppAssignmentTarget{AppId: app, Assignee: &eventsv1.AppAssignmentTarget_UserId{UserId: assignee}}}},
		RequestedBy: "e2e",
	})
	waitFor(results, "the membership's result", 30*time.Second, result("e2e-member"))
	waitFor(access, "grant.added of the membership and of the app assignment", 30*time.Second,
		grantEvent("grant.added", membershipKey), grantEvent("grant.added", fmt.Sprintf("app_assignment/%s/user/%s", app, assignee)))

	// A full sync meanwhile changes nothing about the grant's expiry.
	if out, err := cli(t, "sync", "run", "--connector", "demo", "--wait", "--server", server, "--data-dir", dir); err != nil {
		t.Fatalf("sync run: %v\n%s", err, out)
	}
	// At its expiry the membership is revoked, exactly as any request.
	waitFor(results, "the expiry's revoke", 30*time.Second, result("expiry:e2e-member"))
	waitFor(access, "the membership's grant.removed", 30*time.Second, grantEvent("grant.removed", membershipKey))
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
