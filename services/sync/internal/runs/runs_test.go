package runs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/sync/internal/runs"
)

func open(t *testing.T, keep int) *runs.Store {
	t.Helper()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := runs.Open(context.Background(), js, runs.Options{Keep: keep, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunsNewestFirstAndPruned(t *testing.T) {
	s := open(t, 3)
	ctx := context.Background()
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		id := runs.NewID(base.Add(time.Duration(i) * time.Second))
		ids = append(ids, id)
		r := &syncv1.Run{RunId: id, ConnectorId: "c1", State: syncv1.RunState_RUN_STATE_RUNNING, StartedAt: timestamppb.New(base)}
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.State = syncv1.RunState_RUN_STATE_COMPLETED
		r.Log = []*syncv1.LogLine{{Message: "done"}}
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Another connector's runs are apart.
	if err := s.Put(ctx, &syncv1.Run{RunId: runs.NewID(base), ConnectorId: "c2", State: syncv1.RunState_RUN_STATE_RUNNING}); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "c1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].GetRunId() != ids[4] || got[2].GetRunId() != ids[2] {
		t.Fatalf("runs %v, want the 3 newest of %v, newest first", idsOf(got), ids)
	}
	if len(got[0].GetLog()) != 0 {
		t.Fatal("List returned logs")
	}
	latest, err := s.Get(ctx, "c1", "")
	if err != nil || latest.GetRunId() != ids[4] || len(latest.GetLog()) != 1 {
		t.Fatalf("latest %v %v", latest, err)
	}
	if _, err := s.Get(ctx, "c1", ids[0]); !errors.Is(err, runs.ErrNotFound) {
		t.Fatalf("pruned run: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "c3", ""); !errors.Is(err, runs.ErrNotFound) {
		t.Fatalf("never-synced connector: %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, &syncv1.Run{RunId: "a.b", ConnectorId: "c1"}); err == nil {
		t.Fatal("a run id with a dot was stored")
	}
}

// TestLogKeepsLinesWithoutSecrets: the run's log keeps info lines with their
// attributes, redacts secrets as the service log does, and says how many
// lines it dropped past the cap.
func TestLogKeepsLinesWithoutSecrets(t *testing.T) {
	var out bytes.Buffer
	h := runs.NewLog(telemetry.NewLogger(&out, slog.LevelInfo).Handler())
	log := slog.New(h).With("connector", "c1", "part", "groups")
	log.Debug("not kept")
	log.Info("read groups", "count", 30, "token", telemetry.NewSecret("00supersecret"))
	for range runs.MaxLogLines + 5 {
		log.Info("line")
	}
	lines := h.Lines()
	if len(lines) != runs.MaxLogLines+1 {
		t.Fatalf("%d lines, want %d kept and one saying what was dropped", len(lines), runs.MaxLogLines)
	}
	first := lines[0]
	if first.GetMessage() != "read groups" || first.GetAttrs()["count"] != "30" || first.GetAttrs()["part"] != "groups" {
		t.Fatalf("first line %v", first)
	}
	if _, ok := first.GetAttrs()["connector"]; ok {
		t.Fatal("the connector is repeated in every line")
	}
	if strings.Contains(first.String(), "00supersecret") || strings.Contains(out.String(), "00supersecret") {
		t.Fatal("a secret reached the run's log")
	}
	if !strings.Contains(lines[len(lines)-1].GetMessage(), "6 more lines") {
		t.Fatalf("last line %q", lines[len(lines)-1].GetMessage())
	}
}

func idsOf(rs []*syncv1.Run) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.GetRunId())
	}
	return out
}
