package directory_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/notifier/internal/directory"
)

func identity(id, email string, rev uint64, users ...string) *eventsv1.Identity {
	i := &eventsv1.Identity{Id: id, Email: email, Revision: rev}
	for _, u := range users {
		i.OktaUsers = append(i.OktaUsers, &eventsv1.LinkedOktaUser{ConnectorId: "c1", OktaUserId: u})
	}
	return i
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	d, err := directory.Open(ctx, js, directory.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	mustEmail := func(id, want string) {
		t.Helper()
		got, ok, err := d.IdentityEmail(ctx, id)
		if err != nil || ok != (want != "") || got != want {
			t.Fatalf("IdentityEmail(%s) = %q %v %v, want %q", id, got, ok, err, want)
		}
	}
	mustOkta := func(user, want string) {
		t.Helper()
		got, ok, err := d.OktaUserEmail(ctx, "c1", user)
		if err != nil || ok != (want != "") || got != want {
			t.Fatalf("OktaUserEmail(c1, %s) = %q %v %v, want %q", user, got, ok, err, want)
		}
	}
	apply := func(f func(context.Context, *eventsv1.Identity) (bool, error), i *eventsv1.Identity, want bool) {
		t.Helper()
		got, err := f(ctx, i)
		if err != nil || got != want {
			t.Fatalf("apply %v: %v %v, want %v", i, got, err, want)
		}
	}

	mustEmail("i-ana", "")
	mustOkta("00u1", "")
	apply(d.Upsert, identity("i-ana", "ana@example.test", 2, "00u1", "00u2"), true)
	mustEmail("i-ana", "ana@example.test")
	mustOkta("00u1", "ana@example.test")
	mustOkta("00u2", "ana@example.test")
	if _, ok, _ := d.OktaUserEmail(ctx, "c2", "00u1"); ok {
		t.Fatal("a user of another connector matched")
	}
	// A redelivery of the same revision changes nothing; an older one is ignored.
	apply(d.Upsert, identity("i-ana", "ana@example.test", 2, "00u1", "00u2"), true)
	apply(d.Upsert, identity("i-ana", "old@example.test", 1, "00u9"), false)
	mustEmail("i-ana", "ana@example.test")
	mustOkta("00u9", "")
	// A new revision unlinks 00u2; 00u2 then moves to bob.
	apply(d.Upsert, identity("i-ana", "ana@new.example.test", 3, "00u1"), true)
	mustEmail("i-ana", "ana@new.example.test")
	mustOkta("00u2", "")
	apply(d.Upsert, identity("i-bob", "bob@example.test", 1, "00u2"), true)
	mustOkta("00u2", "bob@example.test")
	// Bob's link to 00u2 survives ana's later change, and a stale link
	// (00u1 claimed by bob without ana releasing it) is checked against
	// the identity's own list.
	apply(d.Upsert, identity("i-ana", "ana@new.example.test", 4), true)
	mustOkta("00u1", "")
	mustOkta("00u2", "bob@example.test")

	// Deleted: gone, and a late upsert of the same revision does not bring it back.
	apply(d.Delete, identity("i-bob", "bob@example.test", 1, "00u2"), true)
	mustEmail("i-bob", "")
	mustOkta("00u2", "")
	apply(d.Upsert, identity("i-bob", "bob@example.test", 1, "00u2"), false)
	mustEmail("i-bob", "")
	// A newer revision does (the catalog recreated it).
	apply(d.Upsert, identity("i-bob", "bob@example.test", 2, "00u2"), true)
	mustEmail("i-bob", "bob@example.test")

	if _, err := d.Upsert(ctx, &eventsv1.Identity{}); err == nil {
		t.Fatal("an identity without id was accepted")
	}
}
