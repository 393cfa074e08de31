package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/testkit"
)

func TestEventsTailDecodesWhatItPrints(t *testing.T) {
	srv := testkit.StartNATS(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	grant := &eventsv1.GrantAdded{
		Context: &eventsv1.ChangeContext{ConnectorId: "c1", Cause: eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC, Revision: 7},
		Grant: &eventsv1.Grant{
			Key:         "group_membership/00g1/00u1",
			Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: "00u1"},
			Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{GroupId: "00g1"}},
		},
	}
	if _, err := b.Publish(ctx, "access.c1.grant.added", "g1", grant); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishRaw(ctx, "okta.c1.hook", "h1", "application/json", []byte(`{"eventType":"com.okta.event_hook"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishRaw(ctx, "sync.c1.request", "s1", "accessbus.events.v1.NoSuchThing", []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	// A message outside the filter must not be printed.
	if _, err := b.Publish(ctx, "access.c2.grant.added", "g2", grant); err != nil {
		t.Fatal(err)
	}

	var out testkit.Buffer
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = tailEvents(tctx, js, tailOptions{subject: "*.c1.>", fromStart: true, limit: 3}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("printed %d lines, want 3:\n%s", len(lines), out.String())
	}
	bySubject := map[string]map[string]any{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line is not JSON: %s", l)
		}
		bySubject[m["subject"].(string)] = m
	}
	g := bySubject["access.c1.grant.added"]
	if g == nil {
		t.Fatalf("no access event printed: %v", lines)
	}
	if g["type"] != "accessbus.events.v1.GrantAdded" || g["stream"] != "ACCESS" || g["msg_id"] != "g1" || g["seq"] != 1.0 {
		t.Errorf("envelope %v", g)
	}
	payload := g["payload"].(map[string]any)
	if payload["grant"].(map[string]any)["key"] != "group_membership/00g1/00u1" {
		t.Errorf("payload not decoded: %v", payload)
	}
	if payload["context"].(map[string]any)["revision"] != "7" {
		t.Errorf("context not decoded: %v", payload["context"])
	}
	h := bySubject["okta.c1.hook"]
	if h["payload"].(map[string]any)["eventType"] != "com.okta.event_hook" {
		t.Errorf("raw JSON payload not printed as JSON: %v", h)
	}
	u := bySubject["sync.c1.request"]
	if u["decode_error"] == nil || u["payload_base64"] != "AQI=" {
		t.Errorf("an unknown type should be printed with its error and raw bytes: %v", u)
	}
}

func TestEventsTailRefusesBadFilters(t *testing.T) {
	for _, f := range []string{"", "access.>.x", "access..c1"} {
		if err := tailEvents(context.Background(), nil, tailOptions{subject: f}, &bytes.Buffer{}); err == nil {
			t.Errorf("filter %q accepted", f)
		}
	}
}

func TestIntersect(t *testing.T) {
	for _, tc := range []struct {
		a, b, want string
		ok         bool
	}{
		{">", "access.>", "access.>", true},
		{"access.c1.>", "access.>", "access.c1.>", true},
		{"*.c1.>", "access.>", "access.c1.>", true},
		{"sync.*.request", "sync.>", "sync.*.request", true},
		{"access.>", "sync.>", "", false},
		{"access", "access.>", "", false},
		{"access.c1", "access.*", "access.c1", true},
		{"a.b", "a.b.c", "", false},
	} {
		got, ok := intersect(tc.a, tc.b)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("intersect(%q, %q) = %q %v, want %q %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}
