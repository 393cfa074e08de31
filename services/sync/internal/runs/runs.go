// Package runs records sync runs (their counts, outcome and a readable log)
// in a JetStream KV bucket, one key per run, so `accessbus sync runs` and the
// SyncService can tell what happened long after the run's process is gone.
package runs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
)

// Bucket is the KV bucket of run records.
const Bucket = "SYNC_RUNS"

// Defaults.
const (
	// DefaultKeep is how many runs are kept per connector.
	DefaultKeep = 50
	// MaxLogLines caps one run's log; a final line says lines were dropped.
	MaxLogLines = 1000
)

// ErrNotFound is returned for a run that is not recorded.
var ErrNotFound = errors.New("run not found")

// Options configure Open.
type Options struct {
	// Replicas is the bucket's replica count; default 1.
	Replicas int
	// Keep is how many runs are kept per connector; default DefaultKeep.
	Keep int
	// Storage is file storage unless set to jetstream.MemoryStorage.
	Storage jetstream.StorageType
}

// Store keeps run records.
type Store struct {
	kv   jetstream.KeyValue
	keep int
}

// Open declares the bucket (idempotently) and returns a Store on it.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "accessbus sync: sync runs with their counts and logs, one key per run",
		History:     1,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare runs bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv, keep: opts.Keep}, nil
}

// NewID returns a run id that sorts by start time: 20261129T120000123Z-1a2b3c.
func NewID(started time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	t := started.UTC()
	return fmt.Sprintf("%s%03dZ-%s", t.Format("20060102T150405"), t.Nanosecond()/1e6, hex.EncodeToString(b))
}

func key(connector, runID string) string { return connector + "." + runID }

// Put stores a run record (creating or replacing it) and, when the run is
// new, drops the connector's oldest runs beyond the kept number.
func (s *Store) Put(ctx context.Context, r *syncv1.Run) error {
	if r.GetConnectorId() == "" || r.GetRunId() == "" || strings.ContainsAny(r.GetRunId(), ".*> ") {
		return fmt.Errorf("store run %q of %q: connector and a run id without dots, spaces or wildcards are required", r.GetRunId(), r.GetConnectorId())
	}
	b, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode run %s: %w", r.GetRunId(), err)
	}
	rev, err := s.kv.Put(ctx, key(r.GetConnectorId(), r.GetRunId()), b)
	if err != nil {
		return fmt.Errorf("store run %s of %s: %w", r.GetRunId(), r.GetConnectorId(), err)
	}
	if rev > 0 && r.GetState() == syncv1.RunState_RUN_STATE_RUNNING {
		return s.prune(ctx, r.GetConnectorId())
	}
	return nil
}

// Get returns one run; runID "" is the latest.
func (s *Store) Get(ctx context.Context, connector, runID string) (*syncv1.Run, error) {
	if runID == "" {
		ids, err := s.ids(ctx, connector)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("latest run of %s: %w: the connector has not synced yet", connector, ErrNotFound)
		}
		runID = ids[0]
	}
	e, err := s.kv.Get(ctx, key(connector, runID))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("run %s of %s: %w", runID, connector, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read run %s of %s: %w", runID, connector, err)
	}
	r := &syncv1.Run{}
	if err := proto.Unmarshal(e.Value(), r); err != nil {
		return nil, fmt.Errorf("decode run %s of %s: %w", runID, connector, err)
	}
	return r, nil
}

// List returns up to limit runs of connector, newest first, without logs.
func (s *Store) List(ctx context.Context, connector string, limit int) ([]*syncv1.Run, error) {
	ids, err := s.ids(ctx, connector)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]*syncv1.Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.Get(ctx, connector, id)
		if errors.Is(err, ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, err
		}
		r.Log = nil
		out = append(out, r)
	}
	return out, nil
}

// ids returns connector's run ids, newest first.
func (s *Store) ids(ctx context.Context, connector string) ([]string, error) {
	if connector == "" || strings.ContainsAny(connector, ".*> ") {
		return nil, fmt.Errorf("runs of %q: %w: not a connector id", connector, ErrNotFound)
	}
	lister, err := s.kv.ListKeysFiltered(ctx, connector+".*")
	if err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", connector, err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, connector+"."))
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids, nil
}

func (s *Store) prune(ctx context.Context, connector string) error {
	ids, err := s.ids(ctx, connector)
	if err != nil {
		return err
	}
	for _, id := range ids[min(len(ids), s.keep):] {
		if err := s.kv.Purge(ctx, key(connector, id)); err != nil {
			return fmt.Errorf("drop old run %s of %s: %w", id, connector, err)
		}
	}
	return nil
}

// Log is a slog.Handler that keeps a run's log lines for its record while
// passing every record on to the service's own handler.
type Log struct {
	next  slog.Handler
	attrs []slog.Attr
	buf   *logBuf
}

type logBuf struct {
	mu      sync.Mutex
	lines   []*syncv1.LogLine
	dropped int
}

// NewLog returns a handler that records lines at info and above and passes
// everything to next.
func NewLog(next slog.Handler) *Log { return &Log{next: next, buf: &logBuf{}} }

// Enabled implements slog.Handler.
func (h *Log) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *Log) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		line := &syncv1.LogLine{Time: timestamppb.New(r.Time), Level: r.Level.String(), Message: r.Message, Attrs: map[string]string{}}
		add := func(a slog.Attr) bool {
			if a.Key == "connector" || a.Key == "run" {
				return true // the record already names them
			}
			line.Attrs[a.Key] = attrString(a.Value)
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(add)
		h.buf.mu.Lock()
		if len(h.buf.lines) < MaxLogLines {
			h.buf.lines = append(h.buf.lines, line)
		} else {
			h.buf.dropped++
		}
		h.buf.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// attrString renders a value as the service's JSON log would, through the
// same redaction (telemetry.Secret values render as [REDACTED] via LogValue).
func attrString(v slog.Value) string {
	v = v.Resolve()
	if v.Kind() == slog.KindGroup {
		var b bytes.Buffer
		for i, a := range v.Group() {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(a.Key + "=" + attrString(a.Value))
		}
		return b.String()
	}
	return v.String()
}

// WithAttrs implements slog.Handler.
func (h *Log) WithAttrs(as []slog.Attr) slog.Handler {
	return &Log{next: h.next.WithAttrs(as), attrs: append(slices.Clip(h.attrs), as...), buf: h.buf}
}

// WithGroup implements slog.Handler; groups are flattened in the run's log.
func (h *Log) WithGroup(name string) slog.Handler {
	return &Log{next: h.next.WithGroup(name), attrs: h.attrs, buf: h.buf}
}

// Lines returns the lines so far, with a last line counting dropped ones.
func (h *Log) Lines() []*syncv1.LogLine {
	h.buf.mu.Lock()
	defer h.buf.mu.Unlock()
	out := slices.Clone(h.buf.lines)
	if h.buf.dropped > 0 {
		out = append(out, &syncv1.LogLine{Time: timestamppb.Now(), Level: "WARN",
			Message: fmt.Sprintf("%d more lines were not kept in the run's record; the service's own log has them", h.buf.dropped)})
	}
	return out
}
