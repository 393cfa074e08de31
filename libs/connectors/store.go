// Package connectors stores connector records (eventsv1.Connector) in the
// JetStream KV bucket CONNECTORS and their encrypted Okta API tokens in the
// separate bucket CONNECTOR_SECRETS, and moves a connector's status with the
// sync runs the catalog sees (ApplyRunStarted, ApplyRunCompleted,
// ApplyRunFailed). docs/connectors.md describes the record and its statuses.
//
// The record never holds the token: only token_set and secret_version. The
// token is sealed with AES-256-GCM (libs/secrets), bound to the connector id
// and the secret's version, so a sealed token copied to another connector
// or version does not open.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Bucket names.
const (
	// BucketConnectors holds the connector records: key = connector id,
	// value = eventsv1.Connector in protobuf.
	BucketConnectors = "CONNECTORS"
	// BucketSecrets holds the sealed API tokens: key = connector id, value =
	// the sealed token and its version (JSON).
	BucketSecrets = "CONNECTOR_SECRETS"
	// BucketRuns holds, per connector, the latest sync run event applied to
	// its status, so that older and redelivered events never regress it.
	BucketRuns = "CONNECTOR_RUNS"
)

// maxAttempts bounds the optimistic-concurrency retries of one change.
const maxAttempts = 64

// Options configure Open.
type Options struct {
	// Replicas is the JetStream replica count of the buckets; 0 means 1.
	Replicas int
	// Key seals and opens tokens. A Store without a key reads and updates
	// records, but its token methods return ErrNoKey.
	Key secrets.Key
	// Storage is file storage unless set to jetstream.MemoryStorage.
	Storage jetstream.StorageType
	// Now is the clock for created_at, updated_at and changed_at; nil means
	// time.Now.
	Now func() time.Time
}

// Store reads and writes connector records and their tokens. It is safe for
// concurrent use, also across processes: every change is a compare-and-set
// on the record's KV revision.
type Store struct {
	records jetstream.KeyValue
	secrets jetstream.KeyValue
	runs    jetstream.KeyValue
	key     secrets.Key
	now     func() time.Time
}

// Open declares the buckets (idempotently: existing buckets are updated to
// opts) and returns a Store on them.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{key: opts.Key, now: opts.Now}
	for _, b := range []struct {
		kv   *jetstream.KeyValue
		name string
		desc string
	}{
		{&s.records, BucketConnectors, "accessbus catalog: connector records (eventsv1.Connector), by connector id"},
		{&s.secrets, BucketSecrets, "accessbus catalog: sealed Okta API tokens, by connector id"},
		{&s.runs, BucketRuns, "accessbus catalog: the latest sync run event applied to each connector's status"},
	} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      b.name,
			Description: b.desc,
			History:     1,
			Storage:     opts.Storage,
			Replicas:    opts.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("declare bucket %s: %w", b.name, err)
		}
		*b.kv = kv
	}
	return s, nil
}

// HasKey reports whether the Store can seal and open tokens.
func (s *Store) HasKey() bool { return !s.key.IsZero() }

// Create stores a new connector. The id must pass
// subjects.ValidateConnectorID; okta_domain is either empty (an owner sets
// it later, with the token) or must pass OrgURL (it is stored normalized).
// The token fields are cleared (set a token with SetToken), the status is
// NOT_CONNECTED with a reason that says which settings are missing,
// created_at and updated_at are now, and the returned record carries its
// revision. An existing id gives ErrExists.
func (s *Store) Create(ctx context.Context, c *eventsv1.Connector) (*eventsv1.Connector, error) {
	if c == nil {
		return nil, fmt.Errorf("create connector: %w: nil record", ErrInvalid)
	}
	id := c.GetId()
	if err := subjects.ValidateConnectorID(id); err != nil {
		return nil, fmt.Errorf("create connector: %w: %w", ErrInvalid, err)
	}
	rec := proto.CloneOf(c)
	if rec.GetOktaDomain() != "" {
		domain, err := normalizeDomain(rec.GetOktaDomain())
		if err != nil {
			return nil, fmt.Errorf("create connector %s: %w: %w", id, ErrInvalid, err)
		}
		rec.OktaDomain = domain
	}
	rec.TokenSet = false
	rec.SecretVersion = 0
	rec.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED
	rec.StatusReason = setupReason(rec)
	rec.Capabilities = nil
	now := timestamppb.New(s.now())
	rec.CreatedAt, rec.UpdatedAt = now, now
	rec.Revision = 0
	data, err := proto.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("create connector %s: encode: %w", id, err)
	}
	rev, err := s.records.Create(ctx, id, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("create connector %s: %w", id, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create connector %s: %w", id, err)
	}
	rec.Revision = rev
	return rec, nil
}

// setupReason is the status_reason of a NOT_CONNECTED connector that
// lacks its Okta domain or its token (or whose token no sync has tried
// yet): what is missing, and the command that sets it.
func setupReason(c *eventsv1.Connector) string {
	cmd := "`accessbus connectors set-settings " + c.GetId()
	switch {
	case c.GetOktaDomain() == "" && !c.GetTokenSet():
		return "the Okta domain and API token are not set: an owner sets them with " + cmd + " --domain acme.okta.com --token-stdin`"
	case c.GetOktaDomain() == "":
		return "the Okta domain is not set: an owner sets it with " + cmd + " --domain acme.okta.com`"
	case !c.GetTokenSet():
		return "no API token is set: an owner sets one with " + cmd + " --token-stdin`"
	}
	return reasonTokenUnchecked
}

// isSetupReason says whether reason is one that setupReason gives for a
// connector with c's id (or the one stores before it gave), which the
// store keeps current as the domain and the token are set.
func isSetupReason(c *eventsv1.Connector, reason string) bool {
	if reason == legacyReasonNoToken {
		return true
	}
	id := c.GetId()
	for _, probe := range []*eventsv1.Connector{
		{Id: id}, {Id: id, TokenSet: true}, {Id: id, OktaDomain: "set"}, {Id: id, OktaDomain: "set", TokenSet: true},
	} {
		if setupReason(probe) == reason {
			return true
		}
	}
	return false
}

// legacyReasonNoToken is the status_reason earlier stores gave a
// connector without a token.
const legacyReasonNoToken = "no API token is set: set one for the connector"

// refreshSetupReason brings the status_reason of a NOT_CONNECTED connector
// up to date with its settings, unless someone gave it another reason.
func refreshSetupReason(c *eventsv1.Connector) {
	if c.GetStatus() == eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED && isSetupReason(c, c.GetStatusReason()) {
		c.StatusReason = setupReason(c)
	}
}

// Get returns the connector's record, with revision set to its KV revision;
// ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, id string) (*eventsv1.Connector, error) {
	rec, _, err := s.get(ctx, id)
	return rec, err
}

func (s *Store) get(ctx context.Context, id string) (*eventsv1.Connector, uint64, error) {
	if err := subjects.ValidateConnectorID(id); err != nil {
		// An id that cannot be a key cannot have a record either.
		return nil, 0, fmt.Errorf("get connector: %w: %w", ErrNotFound, err)
	}
	e, err := s.records.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("get connector %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get connector %s: %w", id, err)
	}
	rec, err := decodeRecord(e)
	if err != nil {
		return nil, 0, err
	}
	return rec, e.Revision(), nil
}

// legacyNoDomain is what the catalog stored as the Okta domain of a
// connector added before its settings, while Create refused a record
// without one. A record that still holds it is read as having no domain,
// so that no reader shows or calls it.
const legacyNoDomain = "okta-domain-not-set.invalid"

func decodeRecord(e jetstream.KeyValueEntry) (*eventsv1.Connector, error) {
	rec := &eventsv1.Connector{}
	if err := proto.Unmarshal(e.Value(), rec); err != nil {
		return nil, fmt.Errorf("decode connector %s (revision %d): %w", e.Key(), e.Revision(), err)
	}
	if rec.GetOktaDomain() == legacyNoDomain {
		rec.OktaDomain = ""
	}
	// The stored bytes cannot know the revision they are written at.
	rec.Revision = e.Revision()
	return rec, nil
}

// List returns every connector, sorted by id.
func (s *Store) List(ctx context.Context) ([]*eventsv1.Connector, error) {
	lister, err := s.records.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list connectors: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	out := make([]*eventsv1.Connector, 0, len(ids))
	for _, id := range ids {
		rec, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("list connectors: %w", err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Update applies fn to the connector's record and stores the result if fn
// changed it, with updated_at set; on a concurrent change it reads the
// record again and runs fn again (fn must not have other side effects).
// fn may not change the id, created_at or the token fields (token_set,
// secret_version: use SetToken); an error from fn is returned as is,
// wrapped. It returns the record as stored, with its new revision.
func (s *Store) Update(ctx context.Context, id string, fn func(*eventsv1.Connector) error) (*eventsv1.Connector, error) {
	rec, _, err := s.update(ctx, id, func(c *eventsv1.Connector) error {
		before := proto.CloneOf(c)
		if err := fn(c); err != nil {
			return err
		}
		if c.GetId() != before.GetId() {
			return fmt.Errorf("%w: the id cannot change (%s to %s): create another connector", ErrInvalid, before.GetId(), c.GetId())
		}
		if c.GetTokenSet() != before.GetTokenSet() || c.GetSecretVersion() != before.GetSecretVersion() {
			return fmt.Errorf("%w: token_set and secret_version change only with SetToken", ErrInvalid)
		}
		c.CreatedAt = before.GetCreatedAt()
		if c.GetOktaDomain() != before.GetOktaDomain() {
			d, err := normalizeDomain(c.GetOktaDomain())
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			c.OktaDomain = d
		}
		refreshSetupReason(c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update connector %s: %w", id, err)
	}
	return rec, nil
}

// update is the compare-and-set loop behind every record change. fn sees a
// copy of the current record; when it leaves it unchanged nothing is
// written. It returns the record as stored and whether it was written.
func (s *Store) update(ctx context.Context, id string, fn func(*eventsv1.Connector) error) (*eventsv1.Connector, bool, error) {
	for range maxAttempts {
		cur, rev, err := s.get(ctx, id)
		if err != nil {
			return nil, false, err
		}
		next := proto.CloneOf(cur)
		if err := fn(next); err != nil {
			return nil, false, err
		}
		next.Revision = cur.GetRevision()
		if proto.Equal(cur, next) {
			return cur, false, nil
		}
		next.UpdatedAt = timestamppb.New(s.now())
		next.Revision = 0
		data, err := proto.Marshal(next)
		if err != nil {
			return nil, false, fmt.Errorf("encode: %w", err)
		}
		newRev, err := s.records.Update(ctx, id, data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // someone else changed it: apply fn to their version
		}
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil, false, ErrNotFound
		}
		if err != nil {
			return nil, false, fmt.Errorf("store revision after %d: %w", rev, err)
		}
		next.Revision = newRev
		return next, true, nil
	}
	return nil, false, fmt.Errorf("%w (%d attempts)", ErrConflict, maxAttempts)
}

// Delete removes the connector's record, its sealed token and its run
// marker. Deleting an unknown id gives ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, _, err := s.get(ctx, id); err != nil {
		return fmt.Errorf("delete connector: %w", err)
	}
	// The secrets go first: a record without them is harmless, a secret
	// left behind by a deleted record is not.
	if err := s.DeleteHookSecret(ctx, id); err != nil {
		return fmt.Errorf("delete connector %s: %w", id, err)
	}
	for _, kv := range []jetstream.KeyValue{s.secrets, s.runs, s.records} {
		if err := kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("delete connector %s from %s: %w", id, kv.Bucket(), err)
		}
	}
	return nil
}

// checkID validates a connector id for the methods that take one.
func checkID(op, id string) error {
	if err := subjects.ValidateConnectorID(id); err != nil {
		return fmt.Errorf("%s: %w: %w", op, ErrInvalid, err)
	}
	return nil
}

// trimReason keeps a status reason readable in a UI and an email subject.
func trimReason(s string) string {
	s = strings.TrimSpace(s)
	const limit = 1000
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}
