package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/okta"
)

// DefaultCursorBucket keeps each connector's System Log cursor.
const DefaultCursorBucket = "SYNC_LOG_CURSORS"

// PollSource is what the poller needs from the sync service.
type PollSource interface {
	// Connectors lists the connectors to poll (those with a token).
	Connectors(ctx context.Context) ([]string, error)
	// Client returns the connector's Okta client, on its rate budget.
	Client(ctx context.Context, connector string) (*okta.Client, error)
	// SyncedSince returns when the connector's last completed full sync
	// started; ok is false before its first one.
	SyncedSince(ctx context.Context, connector string) (at time.Time, ok bool, err error)
}

// PollerOptions tune the System Log catch-up.
type PollerOptions struct {
	// Every is the time between polls of a connector; default 60 s.
	Every time.Duration
	// MaxPages bounds the pages one poll reads (1,000 events each); the
	// next poll goes on from there. Default 10.
	MaxPages int
	// CursorBucket is the KV bucket of cursors; default DefaultCursorBucket.
	CursorBucket string
	Storage      jetstream.StorageType
	Replicas     int
	Logger       *slog.Logger
}

// Poller catches up from the System Log: per connector it reads the events
// after a stored cursor and feeds them to the Intake, which drops those the
// hook already brought (same uuid). It covers deliveries Okta lost and orgs
// without a hook. The cursor is stored only after the events were handed
// off, so a crash repeats a page (deduplicated) and never skips one; after a
// restart polling resumes from it. The first poll of a connector starts at
// its last completed full sync, which reflects everything before.
type Poller struct {
	in   *Intake
	src  PollSource
	kv   jetstream.KeyValue
	opts PollerOptions
	log  *slog.Logger
}

// NewPoller declares the cursor bucket and returns a Poller.
func NewPoller(ctx context.Context, js jetstream.JetStream, in *Intake, src PollSource, opts PollerOptions) (*Poller, error) {
	if opts.Every <= 0 {
		opts.Every = time.Minute
	}
	if opts.MaxPages <= 0 {
		opts.MaxPages = 10
	}
	if opts.CursorBucket == "" {
		opts.CursorBucket = DefaultCursorBucket
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.CursorBucket, Description: "accessbus sync: each connector's System Log cursor",
		History: 1, Storage: opts.Storage, Replicas: max(1, opts.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("declare System Log cursor bucket %s: %w", opts.CursorBucket, err)
	}
	return &Poller{in: in, src: src, kv: kv, opts: opts, log: opts.Logger}, nil
}

// Run polls every connector every opts.Every until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(p.opts.Every)
	defer t.Stop()
	for {
		ids, err := p.src.Connectors(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("System Log catch-up: list connectors", "err", err)
		}
		for _, id := range ids {
			if _, err := p.Poll(ctx, id); err != nil && ctx.Err() == nil {
				p.log.Warn("System Log catch-up failed; the next poll retries from the same cursor", "connector", id, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads connector's new System Log events (up to MaxPages pages) and
// hands them to the Intake; it returns how many events it read.
func (p *Poller) Poll(ctx context.Context, connector string) (int, error) {
	cursor, rev, err := p.cursor(ctx, connector)
	if err != nil {
		return 0, err
	}
	var since time.Time
	if cursor == "" {
		at, ok, err := p.src.SyncedSince(ctx, connector)
		if err != nil || !ok {
			return 0, err // not synced yet: its first full sync comes first
		}
		since = at
	}
	client, err := p.src.Client(ctx, connector)
	if err != nil {
		return 0, err
	}
	read := 0
	for range p.opts.MaxPages {
		events, next, err := client.PollLogs(ctx, cursor, since)
		if err != nil {
			return read, err
		}
		if len(events) > 0 {
			evs := make([]LogEvent, 0, len(events))
			for _, e := range events {
				evs = append(evs, FromLog(e))
			}
			if err := p.in.HandleEvents(ctx, connector, evs); err != nil {
				return read, err
			}
			read += len(events)
		}
		if next != cursor || rev == 0 {
			if rev, err = p.store(ctx, connector, next, rev); err != nil {
				return read, err
			}
			cursor = next
		}
		if len(events) == 0 {
			break
		}
	}
	return read, nil
}

func (p *Poller) cursor(ctx context.Context, connector string) (string, uint64, error) {
	e, err := p.kv.Get(ctx, connector)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("read System Log cursor of %s: %w", connector, err)
	}
	return string(e.Value()), e.Revision(), nil
}

// store writes the cursor with compare-and-set, so two replicas polling one
// connector never move it backwards.
func (p *Poller) store(ctx context.Context, connector, cursor string, rev uint64) (uint64, error) {
	var err error
	var n uint64
	if rev == 0 {
		n, err = p.kv.Create(ctx, connector, []byte(cursor))
	} else {
		n, err = p.kv.Update(ctx, connector, []byte(cursor), rev)
	}
	if err != nil {
		return rev, fmt.Errorf("store System Log cursor of %s (another replica may have polled it): %w", connector, err)
	}
	return n, nil
}

// FromLog turns a System Log event into the shape hook deliveries have.
func FromLog(e okta.LogEvent) LogEvent {
	ev := LogEvent{UUID: e.UUID, Published: e.Published, EventType: e.EventType, Outcome: Outcome{Result: e.Outcome}}
	for _, t := range e.Targets {
		ev.Targets = append(ev.Targets, Actor{ID: t.ID, Type: t.Type, AlternateID: t.AlternateID, DisplayName: t.DisplayName})
	}
	return ev
}
