package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// TestBenchRealtimeJSON runs a small realtime bench through the CLI, both
// paths, on a fast simulated clock (so the rate budget does not make it
// slow): one line holding a JSON array, the hook path first, every change's
// event seen once. Latency is not checked (speed is for the benchmark).
func TestBenchRealtimeJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := realMain(ctx, []string{"bench", "realtime", "--json", "--changes", "24", "--rate", "100",
		"--log-poll", "1s", "--time-scale", "50", "--miss-after", "60s"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench realtime: %v (stderr %q)", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one JSON array:\n%s", len(lines), out.String())
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &raw); err != nil || len(raw) != 2 {
		t.Fatalf("not a JSON array of two paths (%v): %s", err, lines[0])
	}
	for i, fields := range raw {
		for _, f := range []string{"path", "changes", "events_matched", "missed", "duplicates", "p50_ms", "p99_ms", "max_ms", "api_calls"} {
			if _, ok := fields[f]; !ok {
				t.Errorf("path %d has no %q: %s", i, f, lines[0])
			}
		}
	}
	var rs []realtimeResult
	if err := json.Unmarshal([]byte(lines[0]), &rs); err != nil {
		t.Fatal(err)
	}
	if rs[0].Path != pathHook || rs[1].Path != pathSystemLog {
		t.Fatalf("paths %s, %s; want hook first, then system_log", rs[0].Path, rs[1].Path)
	}
	for _, r := range rs {
		kinds := 0
		for _, n := range r.ChangesByKind {
			kinds += n
		}
		if r.Changes != 24 || kinds != 24 || r.EventsMatched != 24 || r.Missed != 0 || r.Duplicates != 0 {
			t.Errorf("%s: changes %d (by kind %v), matched %d, missed %d, duplicates %d; want 24 matched, none missed or doubled",
				r.Path, r.Changes, r.ChangesByKind, r.EventsMatched, r.Missed, r.Duplicates)
		}
		if len(r.ChangesByKind) < 4 {
			t.Errorf("%s: changes of %d kinds (%v), want a mix", r.Path, len(r.ChangesByKind), r.ChangesByKind)
		}
		if !(r.P50MS > 0 && r.P50MS <= r.P99MS && r.P99MS <= r.MaxMS) {
			t.Errorf("%s: p50 %v, p99 %v, max %v out of order", r.Path, r.P50MS, r.P99MS, r.MaxMS)
		}
		if r.APICalls <= 0 || r.TargetedRuns == 0 {
			t.Errorf("%s: %d API calls, %d targeted runs: the changes were not read from Okta", r.Path, r.APICalls, r.TargetedRuns)
		}
	}
	if rs[0].HookDeliveries == 0 || rs[1].HookDeliveries != 0 {
		t.Errorf("hook deliveries: hook path %d, System Log path %d; want some, then none", rs[0].HookDeliveries, rs[1].HookDeliveries)
	}
	if rs[1].LogPollMS != 1000 {
		t.Errorf("System Log path log_poll_ms %d, want 1000", rs[1].LogPollMS)
	}

	// The table shows the same figures, one column per path.
	var table bytes.Buffer
	if err := printRealtimeTable(&table, rs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hook", "system_log", "p99 (ms)", "missed", "duplicates", "api calls"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestBenchRealtimeRefusesBadFlags: nothing starts when a flag is wrong.
func TestBenchRealtimeRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--changes", "0"},
		{"--rate", "0"},
		{"--rate", "-3"},
		{"--log-poll", "0s"},
		{"--log-poll", "500ms"},
		{"--miss-after", "0s"},
		{"--profile", "huge"},
		{"--paths", "email"},
		{"--time-scale", "0.5"},
	} {
		var out, errOut bytes.Buffer
		err := realMain(context.Background(), append([]string{"bench", "realtime"}, args...), &out, &errOut)
		if !errors.Is(err, errBenchRealtime) {
			t.Errorf("%v: err %v, want errBenchRealtime", args, err)
		}
	}
}

// TestRealtimeMatching: an event matches the change it shows once; the
// same event again is a duplicate; other events match nothing.
func TestRealtimeMatching(t *testing.T) {
	tr := &rtTracker{byKey: map[string]*rtChange{}, busy: map[string]bool{}}
	at := time.Now()
	c := &rtChange{kind: kindMemberAdd, key: "added group_membership/g1/u1", entity: "g1/u1", at: at}
	s := &rtChange{kind: kindSuspend, key: "user u2 SUSPENDED", entity: "u2", at: at}
	for _, ch := range []*rtChange{c, s} {
		tr.byKey[ch.key], tr.busy[ch.entity] = ch, true
		tr.all = append(tr.all, ch)
	}
	mustMarshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	added := mustMarshal(&eventsv1.GrantAdded{Grant: &eventsv1.Grant{Key: "group_membership/g1/u1"}})
	updated := mustMarshal(&eventsv1.GrantAdded{Grant: &eventsv1.Grant{Key: "group_membership/g1/u1"}, AttributesChanged: true})
	active := mustMarshal(&eventsv1.ResourceUpserted{Id: "u2", Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_User{User: &eventsv1.User{Status: eventsv1.User_STATUS_ACTIVE}}}})
	suspended := mustMarshal(&eventsv1.ResourceUpserted{Id: "u2", Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_User{User: &eventsv1.User{Status: eventsv1.User_STATUS_SUSPENDED}}}})

	tr.observe("access.demo.grant.added", updated, at.Add(time.Millisecond)) // an update is not the add
	tr.observe("access.demo.grant.removed", added, at.Add(time.Millisecond)) // wrong verb
	tr.observe("access.demo.resource.user.upserted", active, at.Add(time.Millisecond))
	tr.observe("access.demo.resource.group.upserted", added, at.Add(time.Millisecond))
	if c.matched || s.matched {
		t.Fatal("an event of another change matched")
	}
	tr.observe("access.demo.grant.added", added, at.Add(5*time.Millisecond))
	tr.observe("access.demo.resource.user.upserted", suspended, at.Add(7*time.Millisecond))
	tr.observe("access.demo.grant.added", added, at.Add(9*time.Millisecond))
	if !c.matched || c.seen.Sub(c.at) != 5*time.Millisecond || c.dups != 1 {
		t.Errorf("membership: matched %t after %s, %d duplicates; want after 5ms, 1 duplicate", c.matched, c.seen.Sub(c.at), c.dups)
	}
	if !s.matched || s.dups != 0 || len(tr.busy) != 0 || len(tr.released) != 2 {
		t.Errorf("suspend matched %t dups %d; busy %v released %d", s.matched, s.dups, tr.busy, len(tr.released))
	}
	if tr.events != 7 {
		t.Errorf("%d events counted, want 7", tr.events)
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(v, 50); p != 5 {
		t.Errorf("p50 %v, want 5", p)
	}
	if p := percentile(v, 99); p != 10 {
		t.Errorf("p99 %v, want 10", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of nothing %v, want 0", p)
	}
}
