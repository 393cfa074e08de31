package rules

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/testkit"
)

func TestStreaks(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := OpenStreaks(ctx, js, jetstream.MemoryStorage, 1)
	if err != nil {
		t.Fatal(err)
	}
	fail := func(run string, seq uint64, wantNotify bool, wantCount int) {
		t.Helper()
		n, c, err := s.Failed(ctx, "c1", run, seq, 3)
		if err != nil || n != wantNotify || c != wantCount {
			t.Fatalf("Failed(%s, %d) = %v %d %v, want %v %d", run, seq, n, c, err, wantNotify, wantCount)
		}
	}
	ok := func(seq uint64) {
		t.Helper()
		if err := s.Completed(ctx, "c1", seq); err != nil {
			t.Fatal(err)
		}
	}
	fail("r1", 1, false, 1)
	fail("r2", 2, false, 2)
	fail("r2", 2, false, 2) // redelivered: counted once
	fail("r3", 3, true, 3)
	fail("r3", 3, true, 3) // redelivered: the same run asks again (the ledger keeps one email)
	fail("r4", 4, false, 4)
	fail("r5", 5, false, 5)
	ok(6)
	fail("r5", 5, false, 0) // older than the success
	ok(6)
	fail("r7", 7, false, 1)
	// A failure delivered before the success that preceded it in the stream.
	fail("r9", 9, false, 2)
	ok(8)
	fail("r10", 10, false, 2)
	fail("r11", 11, true, 3)
	st, err := s.Get(ctx, "c1")
	if err != nil || st.LastSuccessSeq != 8 || st.NotifiedRunID != "r11" || len(st.Failures) != 3 {
		t.Fatalf("streak %+v, %v", st, err)
	}
	// Another connector has its own streak.
	if n, c, err := s.Failed(ctx, "c2", "r1", 12, 3); n || c != 1 || err != nil {
		t.Fatalf("c2: %v %d %v", n, c, err)
	}
	// An id that cannot be a key is a permanent failure.
	if _, _, err := s.Failed(ctx, "C 1", "r", 1, 3); !bus.IsPermanent(err) {
		t.Fatalf("bad connector id: %v", err)
	}
}
