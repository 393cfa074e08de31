// Package directory is the notifier's own read model of where to reach
// people: each platform identity's email and the Okta user accounts linked to
// it, kept in the JetStream KV bucket NOTIFY_DIRECTORY from the catalog's
// catalog.identity.upserted and catalog.identity.deleted events.
package directory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// Directory finds the email address of a person. Lookups answer
// ("", false, nil) for someone unknown; an error means the answer could
// not be read and the caller should try again later.
type Directory interface {
	// IdentityEmail returns the email of a platform identity.
	IdentityEmail(ctx context.Context, identityID string) (string, bool, error)
	// OktaUserEmail returns the email of the platform identity that an
	// Okta user of a connector's org is linked to.
	OktaUserEmail(ctx context.Context, connectorID, oktaUserID string) (string, bool, error)
}

// Bucket is the KV bucket of the directory.
const Bucket = "NOTIFY_DIRECTORY"

// Options configure Open.
type Options struct {
	// Storage is file storage unless set to jetstream.MemoryStorage.
	Storage jetstream.StorageType
	// Replicas of the bucket; 0 means 1.
	Replicas int
}

// Store is the KV-backed Directory. It is safe for concurrent use, also
// across replicas: every change of an identity is a compare-and-set.
type Store struct {
	kv jetstream.KeyValue
}

var _ Directory = (*Store)(nil)

// Open declares the bucket (idempotently) and returns the store.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "accessbus notifier: identity emails and linked Okta users, from catalog.identity events",
		History:     1,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// record is what the directory keeps of one identity. A deleted identity
// stays as a tombstone with its revision, so that an upsert delivered late
// does not bring it back.
type record struct {
	Revision  uint64   `json:"revision"`
	Deleted   bool     `json:"deleted,omitempty"`
	Email     string   `json:"email,omitempty"`
	OktaUsers []linked `json:"okta_users,omitempty"`
}

type linked struct {
	Connector string `json:"connector"`
	User      string `json:"user"`
}

// hash makes a KV key token of ids chosen elsewhere, whatever they hold.
func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func identityKey(id string) string { return "identity." + hash(id) }

func oktaKey(connector, user string) string { return "okta." + hash(connector, user) }

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// Upsert applies an IdentityUpserted. An identity older than the stored one
// (by revision), or one deleted at the same revision, is ignored. It
// reports whether the identity was applied.
func (s *Store) Upsert(ctx context.Context, id *eventsv1.Identity) (bool, error) {
	if id.GetId() == "" {
		return false, errors.New("identity without an id")
	}
	next := record{Revision: id.GetRevision(), Email: id.GetEmail()}
	for _, u := range id.GetOktaUsers() {
		next.OktaUsers = append(next.OktaUsers, linked{Connector: u.GetConnectorId(), User: u.GetOktaUserId()})
	}
	return s.apply(ctx, id.GetId(), next, func(old *record) bool {
		return old == nil || next.Revision > old.Revision || (next.Revision == old.Revision && !old.Deleted)
	})
}

// Delete applies an IdentityDeleted: the identity and its links are gone
// unless a newer revision was stored.
func (s *Store) Delete(ctx context.Context, id *eventsv1.Identity) (bool, error) {
	if id.GetId() == "" {
		return false, errors.New("identity without an id")
	}
	next := record{Revision: id.GetRevision(), Deleted: true}
	return s.apply(ctx, id.GetId(), next, func(old *record) bool {
		return old == nil || next.Revision >= old.Revision
	})
}

func (s *Store) apply(ctx context.Context, id string, next record, newer func(*record) bool) (bool, error) {
	key := identityKey(id)
	data, err := json.Marshal(next)
	if err != nil {
		return false, fmt.Errorf("encode identity %s: %w", id, err)
	}
	for range 32 {
		old, rev, err := s.get(ctx, key)
		if err != nil {
			return false, fmt.Errorf("read identity %s: %w", id, err)
		}
		if !newer(old) {
			return false, nil
		}
		if old == nil {
			_, err = s.kv.Create(ctx, key, data)
		} else {
			_, err = s.kv.Update(ctx, key, data, rev)
		}
		if isConflict(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("store identity %s: %w", id, err)
		}
		if err := s.link(ctx, id, old, next); err != nil {
			return true, err
		}
		return true, nil
	}
	return false, fmt.Errorf("store identity %s: it kept changing", id)
}

// link points each Okta user of next at the identity and unlinks the users
// that only old had. Lookups check the link against the identity's own
// list, so a link left behind by a crash here never sends mail to the
// wrong person; it is only clutter.
func (s *Store) link(ctx context.Context, id string, old *record, next record) error {
	for _, u := range next.OktaUsers {
		if _, err := s.kv.PutString(ctx, oktaKey(u.Connector, u.User), id); err != nil {
			return fmt.Errorf("link Okta user %s/%s to identity %s: %w", u.Connector, u.User, id, err)
		}
	}
	if old == nil {
		return nil
	}
	for _, u := range old.OktaUsers {
		if slices.Contains(next.OktaUsers, u) {
			continue
		}
		key := oktaKey(u.Connector, u.User)
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("unlink Okta user %s/%s: %w", u.Connector, u.User, err)
		}
		if string(e.Value()) != id {
			continue // linked to someone else since
		}
		if err := s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !isConflict(err) {
			return fmt.Errorf("unlink Okta user %s/%s: %w", u.Connector, u.User, err)
		}
	}
	return nil
}

func (s *Store) get(ctx context.Context, key string) (*record, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// IdentityEmail implements Directory.
func (s *Store) IdentityEmail(ctx context.Context, identityID string) (string, bool, error) {
	if identityID == "" {
		return "", false, nil
	}
	r, _, err := s.get(ctx, identityKey(identityID))
	if err != nil {
		return "", false, fmt.Errorf("look up identity %s: %w", identityID, err)
	}
	if r == nil || r.Deleted || r.Email == "" {
		return "", false, nil
	}
	return r.Email, true, nil
}

// OktaUserEmail implements Directory.
func (s *Store) OktaUserEmail(ctx context.Context, connectorID, oktaUserID string) (string, bool, error) {
	if connectorID == "" || oktaUserID == "" {
		return "", false, nil
	}
	e, err := s.kv.Get(ctx, oktaKey(connectorID, oktaUserID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up Okta user %s/%s: %w", connectorID, oktaUserID, err)
	}
	id := string(e.Value())
	r, _, err := s.get(ctx, identityKey(id))
	if err != nil {
		return "", false, fmt.Errorf("look up identity %s: %w", id, err)
	}
	if r == nil || r.Deleted || r.Email == "" || !slices.Contains(r.OktaUsers, linked{connectorID, oktaUserID}) {
		return "", false, nil
	}
	return r.Email, true, nil
}
