// Package state keeps each connector's last-known Okta state in a JetStream
// KV bucket, keyed by container rather than by grant: one key per user,
// group, app, standard role, custom role and resource set, and one per
// group's members, app's user assignments, app's group assignments,
// principal's role assignments and resource set's bindings. One more
// key, <connector>.sync-meta, holds what the next run needs to know of the
// last one (SyncMeta).
// A large org (a million memberships) is then hundreds of thousands of keys,
// not millions.
//
// Every key's KV revision is the container's revision: the change events
// derived from a container carry that revision (plus one, see package
// changes), so a change published again after a crash gets the same
// Nats-Msg-Id, and a later genuine change gets a new one.
//
// Besides the containers the bucket holds a write-ahead journal: the new
// value of a container is recorded under <connector>.pending.<container>
// before its events are published, and removed once the container is
// written. A run that finds a journal entry first finishes that commit,
// so events published by a process that died before writing the container
// are never contradicted by what the org looks like later. Containers
// committed together share one journal entry, <connector>.journal.<id>,
// holding each one's new value by key (PutJournal): one write for a batch
// instead of one per container.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the name of the KV bucket holding every connector's state.
const DefaultBucket = "SYNC_STATE"

// Container kinds: the second token of a state key.
const (
	// KindUser holds one user resource (eventsv1.Resource bytes).
	KindUser = "user"
	// KindGroup holds one group resource.
	KindGroup = "group"
	// KindApp holds one app resource.
	KindApp = "app"
	// KindStandardRole holds one standard role resource, keyed by role type.
	KindStandardRole = "standard_role"
	// KindMembers holds a group's member user ids.
	KindMembers = "members"
	// KindAppUsers holds an app's user assignments.
	KindAppUsers = "appusers"
	// KindAppGroups holds an app's group assignments.
	KindAppGroups = "appgroups"
	// KindRolesUser holds a user's role assignments (key <c>.roles.user.<id>).
	KindRolesUser = "roles.user"
	// KindRolesGroup holds a group's role assignments (key <c>.roles.group.<id>).
	KindRolesGroup = "roles.group"
	// KindCustomRole holds one custom role resource, with its permissions.
	KindCustomRole = "custom_role"
	// KindResourceSet holds one resource set resource, with its resources.
	KindResourceSet = "resource_set"
	// KindBindings holds the members of every binding of one resource set
	// (key <c>.bindings.<resource set id>).
	KindBindings = "bindings"
	// kindPending prefixes journal entries.
	kindPending = "pending"
	// kindJournal prefixes journal entries of several containers.
	kindJournal = "journal"
	// metaKey is the last token of the key of a connector's SyncMeta,
	// <connector>.sync-meta: one token, so no container key can be it.
	metaKey = "sync-meta"
)

// ErrInvalidKey is returned for a key or id that cannot be a KV key token.
var ErrInvalidKey = errors.New("state: invalid key")

// Options configure Open.
type Options struct {
	// Bucket is the KV bucket's name; default DefaultBucket.
	Bucket string
	// Storage is file storage unless set to jetstream.MemoryStorage (tests).
	Storage jetstream.StorageType
	// Replicas is the bucket's replica count; default 1.
	Replicas int
}

// Store reads and writes connectors' state. It is safe for concurrent use.
type Store struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
	// stream is the bucket's stream: Get reads a key's last message from it
	// to see delete markers, which the KV API hides.
	stream jetstream.Stream
	// subjectPrefix is the stream subject of key "": $KV.<bucket>.
	subjectPrefix string
}

// Open declares the state bucket (idempotently: an existing bucket is
// updated to opts) and returns a Store on it.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "accessbus sync: last-known Okta state of each connector, by container",
		History:     1,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare state bucket %s: %w", opts.Bucket, err)
	}
	stream, err := js.Stream(ctx, "KV_"+opts.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open state bucket %s: %w", opts.Bucket, err)
	}
	return &Store{js: js, kv: kv, stream: stream, subjectPrefix: "$KV." + opts.Bucket + "."}, nil
}

// Key returns the state key of a container: <connector>.<kind>.<id>.
func Key(connector, kind, id string) (string, error) {
	if err := checkToken(connector); err != nil {
		return "", fmt.Errorf("state key of %s %s: connector: %w", kind, id, err)
	}
	if err := checkToken(id); err != nil {
		return "", fmt.Errorf("state key of %s %s: id: %w", kind, id, err)
	}
	return connector + "." + kind + "." + id, nil
}

// SplitKey returns the kind and id of a container key of connector.
func SplitKey(connector, key string) (kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, connector+".")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// checkToken accepts what an Okta id, a role type or a connector id can be:
// one KV key token.
func checkToken(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=':
		default:
			return fmt.Errorf("%w: %q has %q", ErrInvalidKey, s, r)
		}
	}
	return nil
}

// Entry is a container as stored.
type Entry struct {
	// Value is the container's encoded value; nil when Deleted.
	Value []byte
	// Revision is the KV revision of the container's last write (a put or a
	// delete marker); 0 when it was never written.
	Revision uint64
	// Deleted says the container was deleted (Revision is the delete's).
	Deleted bool
}

// Exists says whether the container holds a value.
func (e Entry) Exists() bool { return e.Revision != 0 && !e.Deleted }

// Snapshot is a connector's state as loaded at the start of a run:
// containers and journal entries by key.
type Snapshot struct {
	// Containers maps container keys to their entries, deleted ones included
	// (their revision still matters).
	Containers map[string]Entry
	// Pending maps container keys to journal entries left by a run that did
	// not finish its commit, from a container's own entry or a shared one
	// (Pending.Journal).
	Pending map[string]Pending
	// Journals are the ids of the shared journal entries (PutJournal) the
	// entries of Pending come from.
	Journals []string
	// Meta is what the last run that wrote it left for the next one; zero
	// when none did.
	Meta SyncMeta
}

// SyncMeta is a connector's sync bookkeeping, kept beside its containers
// (not one of them: no event is derived from it).
type SyncMeta struct {
	// Watermark is Okta's time when the last completed run that held no
	// removals began; zero forces the next run to read in full.
	Watermark time.Time `json:"watermark,omitzero"`
	// LastFull is Okta's time when the last full read began.
	LastFull time.Time `json:"last_full,omitzero"`
	// SinceFull counts the incremental runs since the last full read.
	SinceFull int `json:"since_full,omitempty"`
	// Fingerprint names the options and capabilities the state was built
	// with: an incremental run needs the same.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Capabilities are the token's review capabilities the last run found:
	// a targeted resync, which probes nothing, reads within them.
	Capabilities MetaCapabilities `json:"capabilities,omitzero"`
}

// MetaCapabilities are the review capabilities of SyncMeta.
type MetaCapabilities struct {
	ReviewGroupMembership bool `json:"review_group_membership,omitempty"`
	ReviewAppAssignment   bool `json:"review_app_assignment,omitempty"`
	ReviewRoles           bool `json:"review_roles,omitempty"`
}

// PutMeta writes a connector's SyncMeta.
func (s *Store) PutMeta(ctx context.Context, connector string, m SyncMeta) error {
	if err := checkToken(connector); err != nil {
		return fmt.Errorf("write sync meta: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("write sync meta of %s: %w", connector, err)
	}
	if _, err := s.kv.Put(ctx, connector+"."+metaKey, b); err != nil {
		return fmt.Errorf("write sync meta of %s: %w", connector, err)
	}
	return nil
}

// Meta reads a connector's SyncMeta alone (zero before its first run),
// without loading its containers.
func (s *Store) Meta(ctx context.Context, connector string) (SyncMeta, error) {
	var m SyncMeta
	if err := checkToken(connector); err != nil {
		return m, fmt.Errorf("read sync meta: %w", err)
	}
	e, err := s.kv.Get(ctx, connector+"."+metaKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read sync meta of %s: %w", connector, err)
	}
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return m, fmt.Errorf("decode sync meta of %s: %w", connector, err)
	}
	return m, nil
}

// Load reads every container and journal entry of connector, with one KV
// watcher rather than a Get per key.
func (s *Store) Load(ctx context.Context, connector string) (*Snapshot, error) {
	if err := checkToken(connector); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return s.load(ctx, connector, []string{connector + ".>"})
}

// LoadPending reads what a targeted resync needs before it changes
// anything: connector's SyncMeta, its journal entries and the containers
// they name (so that Committer.Recover can finish them), without the other
// containers.
func (s *Store) LoadPending(ctx context.Context, connector string) (*Snapshot, error) {
	if err := checkToken(connector); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	snap, err := s.load(ctx, connector, []string{
		connector + "." + metaKey, connector + "." + kindPending + ".>", connector + "." + kindJournal + ".>",
	})
	if err != nil {
		return nil, err
	}
	for key := range snap.Pending {
		ent, err := s.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		snap.Containers[key] = ent
	}
	return snap, nil
}

// LoadKind reads the containers of one kind of connector (such as every
// app's group assignments), deleted ones included, by key.
func (s *Store) LoadKind(ctx context.Context, connector, kind string) (map[string]Entry, error) {
	if err := checkToken(connector); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	snap, err := s.load(ctx, connector, []string{connector + "." + kind + ".*"})
	if err != nil {
		return nil, err
	}
	return snap.Containers, nil
}

// load reads the keys of connector matching filters with one KV watcher.
func (s *Store) load(ctx context.Context, connector string, filters []string) (*Snapshot, error) {
	snap := &Snapshot{Containers: map[string]Entry{}, Pending: map[string]Pending{}}
	w, err := s.kv.WatchFiltered(ctx, filters)
	if err != nil {
		return nil, fmt.Errorf("load state of %s: %w", connector, err)
	}
	defer func() { _ = w.Stop() }()
	pendingPrefix := connector + "." + kindPending + "."
	journalPrefix := connector + "." + kindJournal + "."
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("load state of %s: %w", connector, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("load state of %s: watcher closed", connector)
			}
			if e == nil { // every current value was delivered
				return snap, nil
			}
			deleted := e.Operation() != jetstream.KeyValuePut
			if e.Key() == connector+"."+metaKey {
				if !deleted {
					if err := json.Unmarshal(e.Value(), &snap.Meta); err != nil {
						return nil, fmt.Errorf("load state of %s: sync meta: %w", connector, err)
					}
				}
				continue
			}
			if id, ok := strings.CutPrefix(e.Key(), journalPrefix); ok {
				if deleted {
					continue
				}
				var entries map[string]Pending
				if err := json.Unmarshal(e.Value(), &entries); err != nil {
					return nil, fmt.Errorf("load state of %s: journal entry %s: %w", connector, e.Key(), err)
				}
				for key, p := range entries {
					p.Journal = id
					snap.Pending[key] = p
				}
				snap.Journals = append(snap.Journals, id)
				continue
			}
			if rest, ok := strings.CutPrefix(e.Key(), pendingPrefix); ok {
				if deleted {
					continue
				}
				var p Pending
				if err := json.Unmarshal(e.Value(), &p); err != nil {
					return nil, fmt.Errorf("load state of %s: journal entry %s: %w", connector, e.Key(), err)
				}
				snap.Pending[connector+"."+rest] = p
				continue
			}
			ent := Entry{Revision: e.Revision(), Deleted: deleted}
			if !deleted {
				ent.Value = e.Value()
			}
			snap.Containers[e.Key()] = ent
		}
	}
}

// Put writes a container's value and returns its new revision.
func (s *Store) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := s.kv.Put(ctx, key, value)
	if err != nil {
		return 0, fmt.Errorf("write state %s: %w", key, err)
	}
	return rev, nil
}

// KeyValue is one container's new value, for PutMany.
type KeyValue struct {
	Key   string
	Value []byte
}

// PutMany writes several containers as Put does, without waiting for each
// write before sending the next (asynchronous publishes to the bucket's
// subjects, as KV puts are), and returns once every one is stored: one
// round trip for them all instead of one each. On failure some may be
// written and others not; each is then as Put left it or as it was.
func (s *Store) PutMany(ctx context.Context, kvs []KeyValue) error {
	for _, kv := range kvs {
		if err := checkKey(kv.Key); err != nil {
			return fmt.Errorf("write state %s: %w", kv.Key, err)
		}
	}
	futs := make([]jetstream.PubAckFuture, 0, len(kvs))
	for _, kv := range kvs {
		f, err := s.js.PublishAsync(s.subjectPrefix+kv.Key, kv.Value)
		if err != nil {
			return fmt.Errorf("write state %s: %w", kv.Key, err)
		}
		futs = append(futs, f)
	}
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("write state %s: %w", kvs[i].Key, err)
		case <-ctx.Done():
			return fmt.Errorf("write state %s: %w", kvs[i].Key, ctx.Err())
		}
	}
	return nil
}

// checkKey checks that a key is one KV key: dot-separated tokens.
func checkKey(key string) error {
	for tok := range strings.SplitSeq(key, ".") {
		if err := checkToken(tok); err != nil {
			return err
		}
	}
	return nil
}

// Delete deletes a container, leaving a delete marker whose revision the
// next change of the key builds on (Load returns it).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete state %s: %w", key, err)
	}
	return nil
}

// Get returns one container as Load would: a deleted one with its delete
// marker's revision, which the container's next change builds on.
func (s *Store) Get(ctx context.Context, key string) (Entry, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, s.subjectPrefix+key)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return Entry{}, nil
	case err != nil:
		return Entry{}, fmt.Errorf("read state %s: %w", key, err)
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return Entry{Revision: m.Sequence, Deleted: true}, nil
	}
	return Entry{Value: m.Data, Revision: m.Sequence}, nil
}

// Pending is a journal entry: the value a container is being changed to
// and the revision the change builds on.
type Pending struct {
	// Prev is the container's revision when the change was computed.
	Prev uint64 `json:"prev"`
	// Delete says the container is being deleted.
	Delete bool `json:"delete,omitempty"`
	// Value is the new value (nil for Delete).
	Value []byte `json:"value,omitempty"`
	// Journal is, in a Snapshot, the id of the shared journal entry that
	// holds this one; empty for a container's own entry.
	Journal string `json:"-"`
}

func pendingKey(key string) (string, error) {
	connector, rest, ok := strings.Cut(key, ".")
	if !ok {
		return "", fmt.Errorf("%w: %q is not a container key", ErrInvalidKey, key)
	}
	return connector + "." + kindPending + "." + rest, nil
}

// PutPending records that container key is about to change.
func (s *Store) PutPending(ctx context.Context, key string, p Pending) error {
	pk, err := pendingKey(key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("journal change of %s: %w", key, err)
	}
	if _, err := s.kv.Put(ctx, pk, b); err != nil {
		return fmt.Errorf("journal change of %s: %w", key, err)
	}
	return nil
}

// DeletePending removes the journal entry of container key.
func (s *Store) DeletePending(ctx context.Context, key string) error {
	pk, err := pendingKey(key)
	if err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, pk); err != nil {
		return fmt.Errorf("clear journal of %s: %w", key, err)
	}
	return nil
}

// PutJournal records, in one write, that the containers of entries (by
// key, all of connector) are about to change: the journal entry of a batch
// of containers committed together. id names it (one KV key token) until
// DeleteJournal.
func (s *Store) PutJournal(ctx context.Context, connector, id string, entries map[string]Pending) error {
	if err := checkToken(connector); err != nil {
		return fmt.Errorf("journal changes: %w", err)
	}
	if err := checkToken(id); err != nil {
		return fmt.Errorf("journal changes of %s: %w", connector, err)
	}
	b, err := json.Marshal(entries)
	if err != nil {
		return fmt.Errorf("journal changes of %s: %w", connector, err)
	}
	if _, err := s.kv.Put(ctx, connector+"."+kindJournal+"."+id, b); err != nil {
		return fmt.Errorf("journal %d changes of %s: %w", len(entries), connector, err)
	}
	return nil
}

// DeleteJournal removes a journal entry PutJournal wrote.
func (s *Store) DeleteJournal(ctx context.Context, connector, id string) error {
	if err := s.kv.Purge(ctx, connector+"."+kindJournal+"."+id); err != nil {
		return fmt.Errorf("clear journal %s of %s: %w", id, connector, err)
	}
	return nil
}
