package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/services/sync/internal/state"
)

func TestKeys(t *testing.T) {
	k, err := state.Key("c1", state.KindRolesUser, "00uA")
	if err != nil || k != "c1.roles.user.00uA" {
		t.Fatalf("Key: %q, %v", k, err)
	}
	if kind, id, ok := state.SplitKey("c1", k); !ok || kind != state.KindRolesUser || id != "00uA" {
		t.Fatalf("SplitKey: %q %q %v", kind, id, ok)
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b"} {
		if _, err := state.Key("c1", state.KindUser, bad); !errors.Is(err, state.ErrInvalidKey) {
			t.Errorf("Key(%q): %v, want ErrInvalidKey", bad, err)
		}
	}
}

// TestLoad: Load returns values, the revisions of delete markers and the
// journal, and only the connector's own keys.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Put(ctx, "c1.user.a", []byte("A"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "c1.user.b", []byte("B")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "c1.user.b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "c2.user.a", []byte("other")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPending(ctx, "c1.members.g", state.Pending{Prev: 7, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPending(ctx, "c1.members.h", state.Pending{Prev: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePending(ctx, "c1.members.h"); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if a := snap.Containers["c1.user.a"]; !a.Exists() || a.Revision != r1 || string(a.Value) != "A" {
		t.Errorf("user a: %+v", a)
	}
	if b := snap.Containers["c1.user.b"]; b.Exists() || !b.Deleted || b.Revision <= r1 {
		t.Errorf("user b: %+v, want a delete marker after revision %d", b, r1)
	}
	if len(snap.Containers) != 2 {
		t.Errorf("containers %v", snap.Containers)
	}
	if p, ok := snap.Pending["c1.members.g"]; !ok || p.Prev != 7 || string(p.Value) != "v" || len(snap.Pending) != 1 {
		t.Errorf("pending %+v", snap.Pending)
	}
	empty, err := s.Load(ctx, "c3")
	if err != nil || len(empty.Containers) != 0 {
		t.Fatalf("empty connector: %v, %v", empty, err)
	}
}

// TestMeta: the sync meta round-trips, is not a container, and is per
// connector.
func TestMeta(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	m := state.SyncMeta{Watermark: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LastFull: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), SinceFull: 3, Fingerprint: "f"}
	if err := s.PutMeta(ctx, "c1", m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "c1.user.a", []byte("A")); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Meta.Watermark.Equal(m.Watermark) || !snap.Meta.LastFull.Equal(m.LastFull) || snap.Meta.SinceFull != 3 || snap.Meta.Fingerprint != "f" {
		t.Errorf("meta %+v, want %+v", snap.Meta, m)
	}
	if len(snap.Containers) != 1 {
		t.Errorf("containers %v: the meta is not one", snap.Containers)
	}
	other, err := s.Load(ctx, "c2")
	if err != nil || !other.Meta.Watermark.IsZero() {
		t.Fatalf("c2: %+v, %v", other.Meta, err)
	}
	if err := s.PutMeta(ctx, "bad.id", m); !errors.Is(err, state.ErrInvalidKey) {
		t.Fatalf("bad connector: %v", err)
	}
	// Meta alone reads the same, and zero for a connector without one.
	if got, err := s.Meta(ctx, "c1"); err != nil || !got.Watermark.Equal(m.Watermark) || got.SinceFull != 3 {
		t.Fatalf("Meta(c1) %+v, %v", got, err)
	}
	if got, err := s.Meta(ctx, "c2"); err != nil || !got.Watermark.IsZero() {
		t.Fatalf("Meta(c2) %+v, %v", got, err)
	}
	if _, err := s.Meta(ctx, "bad.id"); !errors.Is(err, state.ErrInvalidKey) {
		t.Fatalf("Meta(bad.id): %v", err)
	}
}

// TestJournal: a shared journal entry loads as one Pending per container,
// each naming it, until it is deleted; a bad id or connector is refused.
func TestJournal(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]state.Pending{
		"c1.members.g": {Prev: 3, Value: []byte("v")},
		"c1.user.u":    {Prev: 5, Delete: true},
	}
	if err := s.PutJournal(ctx, "c1", "j1", entries); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJournal(ctx, "c2", "j1", map[string]state.Pending{"c2.user.x": {Prev: 1}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 2 || len(snap.Journals) != 1 || snap.Journals[0] != "j1" || len(snap.Containers) != 0 {
		t.Fatalf("loaded pending %+v, journals %v, containers %v", snap.Pending, snap.Journals, snap.Containers)
	}
	if p := snap.Pending["c1.members.g"]; p.Prev != 3 || string(p.Value) != "v" || p.Journal != "j1" {
		t.Errorf("members g: %+v", p)
	}
	if p := snap.Pending["c1.user.u"]; p.Prev != 5 || !p.Delete || p.Journal != "j1" {
		t.Errorf("user u: %+v", p)
	}
	if err := s.DeleteJournal(ctx, "c1", "j1"); err != nil {
		t.Fatal(err)
	}
	if snap, err = s.Load(ctx, "c1"); err != nil || len(snap.Pending) != 0 || len(snap.Journals) != 0 {
		t.Fatalf("after delete: %+v, %v, %v", snap.Pending, snap.Journals, err)
	}
	if other, err := s.Load(ctx, "c2"); err != nil || len(other.Pending) != 1 {
		t.Fatalf("c2's journal: %+v, %v", other.Pending, err)
	}
	if err := s.PutJournal(ctx, "c1", "a.b", entries); !errors.Is(err, state.ErrInvalidKey) {
		t.Errorf("bad id: %v", err)
	}
	if err := s.PutJournal(ctx, "c*", "j2", entries); !errors.Is(err, state.ErrInvalidKey) {
		t.Errorf("bad connector: %v", err)
	}
}

// TestGetAndLoadPending: Get answers as Load does, delete markers
// included, and LoadPending returns the journal, the containers it names
// and the meta, nothing else.
func TestGetAndLoadPending(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(ctx, "c1.user.never"); err != nil || e.Revision != 0 || e.Exists() {
		t.Fatalf("never written: %+v, %v", e, err)
	}
	rev, err := s.Put(ctx, "c1.user.u", []byte("u1"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(ctx, "c1.user.u"); err != nil || e.Revision != rev || string(e.Value) != "u1" || !e.Exists() {
		t.Fatalf("written: %+v, %v", e, err)
	}
	if err := s.Delete(ctx, "c1.user.u"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "c1.user.u")
	if err != nil || !got.Deleted || got.Exists() || got.Revision <= rev {
		t.Fatalf("deleted: %+v, %v", got, err)
	}
	snap, err := s.Load(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if e := snap.Containers["c1.user.u"]; e.Revision != got.Revision || !e.Deleted {
		t.Fatalf("Load says %+v, Get %+v", e, got)
	}

	if _, err := s.Put(ctx, "c1.members.g", []byte("m")); err != nil {
		t.Fatal(err)
	}
	grev, _ := s.Put(ctx, "c1.group.g", []byte("g"))
	if err := s.PutJournal(ctx, "c1", "j1", map[string]state.Pending{"c1.group.g": {Prev: grev, Value: []byte("g2")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPending(ctx, "c1.user.u", state.Pending{Prev: got.Revision, Value: []byte("u2")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(ctx, "c1", state.SyncMeta{Fingerprint: "f", Capabilities: state.MetaCapabilities{ReviewRoles: true}}); err != nil {
		t.Fatal(err)
	}
	p, err := s.LoadPending(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pending) != 2 || len(p.Journals) != 1 || len(p.Containers) != 2 {
		t.Fatalf("pending %v, journals %v, containers %v", p.Pending, p.Journals, p.Containers)
	}
	if e := p.Containers["c1.group.g"]; e.Revision != grev || string(e.Value) != "g" {
		t.Errorf("journaled group: %+v", e)
	}
	if e := p.Containers["c1.user.u"]; !e.Deleted || e.Revision != got.Revision {
		t.Errorf("journaled deleted user: %+v", e)
	}
	if p.Meta.Fingerprint != "f" || !p.Meta.Capabilities.ReviewRoles {
		t.Errorf("meta %+v", p.Meta)
	}
}

// TestPutMany: several containers written at once read back as Put writes
// them, each with its own revision; a key that is not one is refused
// before anything is written.
func TestPutMany(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	kvs := []state.KeyValue{{"c1.user.a", []byte("A")}, {"c1.members.g", []byte("G")}, {"c1.roles.user.u", []byte("R")}}
	if err := s.PutMany(ctx, kvs); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	revs := map[uint64]bool{}
	for _, kv := range kvs {
		e := snap.Containers[kv.Key]
		if string(e.Value) != string(kv.Value) || !e.Exists() || revs[e.Revision] {
			t.Errorf("%s: %+v", kv.Key, e)
		}
		revs[e.Revision] = true
		if got, err := s.Get(ctx, kv.Key); err != nil || got.Revision != e.Revision {
			t.Errorf("Get %s: %+v, %v; Load says revision %d", kv.Key, got, err, e.Revision)
		}
	}
	if err := s.PutMany(ctx, []state.KeyValue{{"c1.user.b", []byte("B")}, {"c1.user.x y", []byte("X")}}); !errors.Is(err, state.ErrInvalidKey) {
		t.Errorf("a bad key: %v, want ErrInvalidKey", err)
	}
	if got, err := s.Get(ctx, "c1.user.b"); err != nil || got.Exists() {
		t.Errorf("c1.user.b written though its batch was refused: %+v, %v", got, err)
	}
	if err := s.PutMany(ctx, nil); err != nil {
		t.Errorf("nothing to write: %v", err)
	}
}
