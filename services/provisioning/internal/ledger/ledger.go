// Package ledger keeps what the provisioning service must remember to carry
// out each request once: a record per request (RequestRecord, keyed by
// connector and request_id) and the active time-bound grants
// (TimeBoundGrant, keyed by connector and grant key), in two JetStream KV
// buckets. Every change is a compare-and-set on the key's revision, so two
// replicas handling redeliveries of one request cannot both move it on.
package ledger

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
)

// Bucket names.
const (
	RequestsBucket = "PROVISIONING_REQUESTS"
	GrantsBucket   = "PROVISIONING_GRANTS"
)

// DefaultRetention is how long a request's record (and so its request_id's
// idempotency) is kept.
const DefaultRetention = 30 * 24 * time.Hour

// Errors of the ledger.
var (
	// ErrNotFound: no record for this request (or grant).
	ErrNotFound = errors.New("ledger: not found")
	// ErrConflict: the record changed since it was read; read it again.
	ErrConflict = errors.New("ledger: changed concurrently")
)

// Options configure Open.
type Options struct {
	// Storage is file storage unless set to jetstream.MemoryStorage (tests).
	Storage jetstream.StorageType
	// Replicas of the buckets; default 1.
	Replicas int
	// Retention of request records; default DefaultRetention.
	Retention time.Duration
}

// Store is the ledger. It is safe for concurrent use.
type Store struct {
	reqs   jetstream.KeyValue
	grants jetstream.KeyValue
	now    func() time.Time
}

// Open declares the buckets (idempotently) and returns the ledger.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	reqs, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RequestsBucket, Description: "accessbus provisioning: one record per request, its state and its result",
		History: 1, TTL: opts.Retention, Storage: opts.Storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", RequestsBucket, err)
	}
	grants, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: GrantsBucket, Description: "accessbus provisioning: active time-bound grants and their expiry",
		History: 1, Storage: opts.Storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", GrantsBucket, err)
	}
	return &Store{reqs: reqs, grants: grants, now: time.Now}, nil
}

// hashID makes a KV key token of any id: request ids and grant keys are
// chosen by callers and may hold any character.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func requestKey(connector, requestID string) string {
	return connector + ".r." + hashID(requestID)
}

func grantKey(connector, key string) string {
	return connector + ".g." + hashID(key)
}

// Begin records that a request was taken from the queue: a new record
// (RECEIVED, one attempt) for a request_id not seen, else the stored record
// with one more attempt. It returns the record and its revision, for
// Update. The stored request stands: a different request under a known
// request_id does not replace it.
func (s *Store) Begin(ctx context.Context, req *eventsv1.ProvisioningRequest) (*provv1.RequestRecord, uint64, error) {
	key := requestKey(req.GetConnectorId(), req.GetRequestId())
	// Most requests are new: try to create the record first, one round trip.
	now := timestamppb.New(s.now())
	fresh := &provv1.RequestRecord{Request: req, State: provv1.RequestState_REQUEST_STATE_RECEIVED,
		ReceivedAt: now, UpdatedAt: now, Attempts: 1}
	b, err := proto.Marshal(fresh)
	if err != nil {
		return nil, 0, fmt.Errorf("record request %s: %w", req.GetRequestId(), err)
	}
	for range 10 {
		rev, err := s.reqs.Create(ctx, key, b)
		if err == nil {
			return fresh, rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, 0, fmt.Errorf("record request %s: %w", req.GetRequestId(), err)
		}
		rec, rev, err := s.get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // expired between the two calls: create it
		}
		if err != nil {
			return nil, 0, err
		}
		if rec.GetState() == provv1.RequestState_REQUEST_STATE_COMPLETED {
			return rec, rev, nil
		}
		rec.Attempts++
		rev, err = s.Update(ctx, rec, rev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return rec, rev, err
	}
	return nil, 0, fmt.Errorf("record request %s: %w", req.GetRequestId(), ErrConflict)
}

// Update writes rec if its stored revision is still rev, and returns the
// new revision; ErrConflict otherwise.
func (s *Store) Update(ctx context.Context, rec *provv1.RequestRecord, rev uint64) (uint64, error) {
	req := rec.GetRequest()
	rec.UpdatedAt = timestamppb.New(s.now())
	b, err := proto.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("update request %s: %w", req.GetRequestId(), err)
	}
	nrev, err := s.reqs.Update(ctx, requestKey(req.GetConnectorId(), req.GetRequestId()), b, rev)
	if isConflict(err) {
		return 0, fmt.Errorf("update request %s: %w", req.GetRequestId(), ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("update request %s: %w", req.GetRequestId(), err)
	}
	return nrev, nil
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// Get returns the record of a request and its revision; ErrNotFound when
// the request_id was never seen (or its record expired).
func (s *Store) Get(ctx context.Context, connector, requestID string) (*provv1.RequestRecord, uint64, error) {
	return s.get(ctx, requestKey(connector, requestID))
}

func (s *Store) get(ctx context.Context, key string) (*provv1.RequestRecord, uint64, error) {
	e, err := s.reqs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read request record: %w", err)
	}
	rec := &provv1.RequestRecord{}
	if err := proto.Unmarshal(e.Value(), rec); err != nil {
		return nil, 0, fmt.Errorf("decode request record %s: %w", key, err)
	}
	return rec, e.Revision(), nil
}

// List returns a connector's request records, newest first, at most limit.
// It reads every record of the connector (kept DefaultRetention).
func (s *Store) List(ctx context.Context, connector string, limit int) ([]*provv1.RequestRecord, error) {
	var out []*provv1.RequestRecord
	err := each(ctx, s.reqs, connector+".r.*", func(v []byte) error {
		rec := &provv1.RequestRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return err
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list requests of %s: %w", connector, err)
	}
	slices.SortFunc(out, func(a, b *provv1.RequestRecord) int {
		return cmp.Or(b.GetReceivedAt().AsTime().Compare(a.GetReceivedAt().AsTime()),
			strings.Compare(a.GetRequest().GetRequestId(), b.GetRequest().GetRequestId()))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// each calls fn with the value of every live key matching filter.
func each(ctx context.Context, kv jetstream.KeyValue, filter string, fn func([]byte) error) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				return nil
			}
			if err := fn(e.Value()); err != nil {
				return fmt.Errorf("%s: %w", e.Key(), err)
			}
		}
	}
}

// Wait returns the request's record once it is COMPLETED, or as it is
// when ctx ends (with ctx's error); ErrNotFound only if ctx ends before the
// request was even received.
func (s *Store) Wait(ctx context.Context, connector, requestID string) (*provv1.RequestRecord, error) {
	key := requestKey(connector, requestID)
	w, err := s.reqs.Watch(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("follow request %s: %w", requestID, err)
	}
	defer func() { _ = w.Stop() }()
	var last *provv1.RequestRecord
	for {
		select {
		case <-ctx.Done():
			if last == nil {
				return nil, fmt.Errorf("request %s: %w (%w)", requestID, ErrNotFound, ctx.Err())
			}
			return last, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return last, fmt.Errorf("follow request %s: watcher closed", requestID)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			rec := &provv1.RequestRecord{}
			if err := proto.Unmarshal(e.Value(), rec); err != nil {
				return nil, fmt.Errorf("decode request record %s: %w", requestID, err)
			}
			last = rec
			if rec.GetState() == provv1.RequestState_REQUEST_STATE_COMPLETED {
				return rec, nil
			}
		}
	}
}

// ---- time-bound grants

// PutGrant records (or replaces) the time-bound grant of g's grant key.
func (s *Store) PutGrant(ctx context.Context, g *provv1.TimeBoundGrant) error {
	b, err := proto.Marshal(g)
	if err != nil {
		return fmt.Errorf("record time-bound grant %s: %w", g.GetGrantKey(), err)
	}
	if _, err := s.grants.Put(ctx, grantKey(g.GetConnectorId(), g.GetGrantKey()), b); err != nil {
		return fmt.Errorf("record time-bound grant %s: %w", g.GetGrantKey(), err)
	}
	return nil
}

// UpdateGrant writes g if its stored revision is still rev; ErrConflict
// otherwise (ErrNotFound when it was deleted meanwhile).
func (s *Store) UpdateGrant(ctx context.Context, g *provv1.TimeBoundGrant, rev uint64) (uint64, error) {
	b, err := proto.Marshal(g)
	if err != nil {
		return 0, fmt.Errorf("update time-bound grant %s: %w", g.GetGrantKey(), err)
	}
	nrev, err := s.grants.Update(ctx, grantKey(g.GetConnectorId(), g.GetGrantKey()), b, rev)
	if isConflict(err) {
		return 0, fmt.Errorf("update time-bound grant %s: %w", g.GetGrantKey(), ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("update time-bound grant %s: %w", g.GetGrantKey(), err)
	}
	return nrev, nil
}

// GetGrant returns the time-bound grant of a grant key and its revision;
// ErrNotFound when the grant is not time-bound (or no longer).
func (s *Store) GetGrant(ctx context.Context, connector, key string) (*provv1.TimeBoundGrant, uint64, error) {
	e, err := s.grants.Get(ctx, grantKey(connector, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read time-bound grant %s: %w", key, err)
	}
	g := &provv1.TimeBoundGrant{}
	if err := proto.Unmarshal(e.Value(), g); err != nil {
		return nil, 0, fmt.Errorf("decode time-bound grant %s: %w", key, err)
	}
	return g, e.Revision(), nil
}

// DeleteGrant ends a time-bound grant's timer; deleting one that is not
// there is no error. With onlyRequest set, it deletes the timer only while
// it is still the one that request made (a newer grant replaced it
// otherwise).
func (s *Store) DeleteGrant(ctx context.Context, connector, key, onlyRequest string) error {
	for range 10 {
		g, rev, err := s.GetGrant(ctx, connector, key)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if onlyRequest != "" && g.GetRequestId() != onlyRequest {
			return nil
		}
		err = s.grants.Delete(ctx, grantKey(connector, key), jetstream.LastRevision(rev))
		if isConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("end time-bound grant %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("end time-bound grant %s: %w", key, ErrConflict)
}

// Grants returns the active time-bound grants of connector ("" for every
// connector), soonest expiry first.
func (s *Store) Grants(ctx context.Context, connector string) ([]*provv1.TimeBoundGrant, error) {
	filter := ">"
	if connector != "" {
		filter = connector + ".g.*"
	}
	var out []*provv1.TimeBoundGrant
	err := each(ctx, s.grants, filter, func(v []byte) error {
		g := &provv1.TimeBoundGrant{}
		if err := proto.Unmarshal(v, g); err != nil {
			return err
		}
		out = append(out, g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list time-bound grants: %w", err)
	}
	slices.SortFunc(out, func(a, b *provv1.TimeBoundGrant) int {
		return cmp.Or(a.GetExpiresAt().AsTime().Compare(b.GetExpiresAt().AsTime()), strings.Compare(a.GetGrantKey(), b.GetGrantKey()))
	})
	return out, nil
}
