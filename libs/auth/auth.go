// Package auth authenticates the callers of accessbus's Connect APIs and
// holds their platform roles. Every call carries a bearer API key
// (`Authorization: Bearer abk_...`) bound to one platform identity; keys
// are stored hashed (SHA-256 of 32 random bytes: a key cannot be guessed,
// so a slow hash adds nothing) in the AUTH_KEYS KV bucket, and roles per
// identity in AUTH_ROLES. The Interceptor puts the caller (identity and
// roles) in the request's context; handlers read it with CallerFrom and
// check what it may do.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// Role is a platform role.
type Role string

// Platform roles.
const (
	// SuperAdmin may do everything, including assigning roles.
	SuperAdmin Role = "super_admin"
	// ConnectorAdmin may add connectors and own them.
	ConnectorAdmin Role = "connector_admin"
)

// ParseRole reads a role name as the CLI and API take it.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(s))) {
	case "super_admin", "super_administrator":
		return SuperAdmin, nil
	case "connector_admin", "connector_administrator":
		return ConnectorAdmin, nil
	}
	return "", fmt.Errorf("%w: %q: use super_admin or connector_admin", ErrInvalidRole, s)
}

// Errors of the package.
var (
	// ErrUnauthenticated: no API key, or one that is not known.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrInvalidRole: not a platform role.
	ErrInvalidRole = errors.New("auth: invalid role")
)

// Bucket names.
const (
	KeysBucket  = "AUTH_KEYS"
	RolesBucket = "AUTH_ROLES"
)

// KeyPrefix starts every API key, so that one found in a file or a log is
// recognisable (and redactable).
const KeyPrefix = "abk_"

// Store holds API keys and roles.
type Store struct {
	keys  jetstream.KeyValue
	roles jetstream.KeyValue
	now   func() time.Time
}

// Options configure Open.
type Options struct {
	Storage  jetstream.StorageType
	Replicas int
}

// Open declares the buckets (idempotently) and returns the Store.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	keys, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KeysBucket, Description: "accessbus: API keys (SHA-256 of the key) and the identity each is bound to",
		History: 1, Storage: opts.Storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", KeysBucket, err)
	}
	roles, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RolesBucket, Description: "accessbus: platform roles of each identity",
		History: 1, Storage: opts.Storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", RolesBucket, err)
	}
	return &Store{keys: keys, roles: roles, now: time.Now}, nil
}

// keyRecord is what is stored of a key: never the key itself.
type keyRecord struct {
	Identity string    `json:"identity"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewKey creates an API key for identity, named for people (such as
// "laptop" or "ci"), and returns it: the only time it is seen.
func (s *Store) NewKey(ctx context.Context, identity, name string) (telemetry.Secret, error) {
	if identity == "" {
		return telemetry.Secret{}, errors.New("auth: new key: the identity is required")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return telemetry.Secret{}, fmt.Errorf("auth: new key: %w", err)
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	b, _ := json.Marshal(keyRecord{Identity: identity, Name: name, Created: s.now().UTC()})
	if _, err := s.keys.Create(ctx, "k."+hashKey(key), b); err != nil {
		return telemetry.Secret{}, fmt.Errorf("auth: store new key of %s: %w", identity, err)
	}
	return telemetry.NewSecret(key), nil
}

// Caller is who makes an API call.
type Caller struct {
	// Identity is the platform identity id the key is bound to.
	Identity string
	// Roles are the identity's platform roles.
	Roles []Role
}

// Has says whether the caller holds any of roles.
func (c Caller) Has(roles ...Role) bool {
	return slices.ContainsFunc(roles, func(r Role) bool { return slices.Contains(c.Roles, r) })
}

// Authenticate returns the caller of an API key; ErrUnauthenticated when
// the key is empty or unknown.
func (s *Store) Authenticate(ctx context.Context, key string) (Caller, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return Caller{}, fmt.Errorf("%w: not an accessbus API key (they start with %s)", ErrUnauthenticated, KeyPrefix)
	}
	e, err := s.keys.Get(ctx, "k."+hashKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Caller{}, fmt.Errorf("%w: unknown API key", ErrUnauthenticated)
	}
	if err != nil {
		return Caller{}, fmt.Errorf("auth: read key: %w", err)
	}
	var rec keyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return Caller{}, fmt.Errorf("auth: decode key record: %w", err)
	}
	roles, err := s.Roles(ctx, rec.Identity)
	if err != nil {
		return Caller{}, err
	}
	return Caller{Identity: rec.Identity, Roles: roles}, nil
}

// Roles returns an identity's platform roles, sorted.
func (s *Store) Roles(ctx context.Context, identity string) ([]Role, error) {
	if identity == "" {
		return nil, nil
	}
	e, err := s.roles.Get(ctx, "r."+hashKey(identity))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: read roles of %s: %w", identity, err)
	}
	var roles []Role
	if err := json.Unmarshal(e.Value(), &roles); err != nil {
		return nil, fmt.Errorf("auth: decode roles of %s: %w", identity, err)
	}
	return roles, nil
}

// Grant gives identity role (idempotently).
func (s *Store) Grant(ctx context.Context, identity string, role Role) error {
	return s.changeRoles(ctx, identity, func(rs []Role) []Role {
		if !slices.Contains(rs, role) {
			rs = append(rs, role)
		}
		return rs
	})
}

// Revoke takes role from identity (idempotently).
func (s *Store) Revoke(ctx context.Context, identity string, role Role) error {
	return s.changeRoles(ctx, identity, func(rs []Role) []Role {
		return slices.DeleteFunc(rs, func(r Role) bool { return r == role })
	})
}

func (s *Store) changeRoles(ctx context.Context, identity string, change func([]Role) []Role) error {
	if identity == "" {
		return errors.New("auth: the identity is required")
	}
	key := "r." + hashKey(identity)
	for range 10 {
		var roles []Role
		var rev uint64
		e, err := s.roles.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("auth: read roles of %s: %w", identity, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &roles); err != nil {
				return fmt.Errorf("auth: decode roles of %s: %w", identity, err)
			}
		}
		roles = change(roles)
		slices.Sort(roles)
		b, _ := json.Marshal(roles)
		if rev == 0 {
			_, err = s.roles.Create(ctx, key, b)
		} else {
			_, err = s.roles.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if !errors.Is(err, jetstream.ErrKeyExists) && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return fmt.Errorf("auth: store roles of %s: %w", identity, err)
		}
	}
	return fmt.Errorf("auth: roles of %s changed concurrently too often", identity)
}

// HasAnyRoles says whether any identity holds a role at all (a fresh
// installation has none, and bootstraps its first Super Administrator).
func (s *Store) HasAnyRoles(ctx context.Context) (bool, error) {
	lister, err := s.roles.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return false, nil
		}
		return false, err
	}
	defer func() { _ = lister.Stop() }()
	for range lister.Keys() {
		return true, nil
	}
	return false, nil
}

// ---- the interceptor

type callerKey struct{}

// CallerFrom returns the authenticated caller of a request's context.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller returns ctx carrying c (for tests and in-process calls).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// Interceptor authenticates every unary and streaming call by its bearer
// API key and puts the Caller in the handler's context. A call without a
// key, or with an unknown one, is refused with CodeUnauthenticated and a
// message that says how to give one.
func Interceptor(s *Store) connect.Interceptor {
	return &interceptor{s: s}
}

type interceptor struct{ s *Store }

// howToSendKey ends every Unauthenticated refusal: how to give a key.
const howToSendKey = "send Authorization: Bearer <API key> (the CLI reads ACCESSBUS_API_KEY, or accessbus dev's <data-dir>/admin-api-key)"

func (i *interceptor) authenticate(ctx context.Context, header string) (context.Context, error) {
	key, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || strings.TrimSpace(key) == "" {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("no API key: "+howToSendKey))
	}
	c, err := i.s.Authenticate(ctx, strings.TrimSpace(key))
	if errors.Is(err, ErrUnauthenticated) {
		return nil, connect.NewError(connect.CodeUnauthenticated, err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return WithCaller(ctx, c), nil
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := i.authenticate(ctx, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// ClientKey returns a client interceptor that sends key on every call.
func ClientKey(key telemetry.Secret) connect.Interceptor {
	return &clientKey{key: key}
}

type clientKey struct{ key telemetry.Secret }

func (c *clientKey) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient && c.key.IsSet() {
			req.Header().Set("Authorization", "Bearer "+c.key.Reveal())
		}
		return next(ctx, req)
	}
}

func (c *clientKey) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if c.key.IsSet() {
			conn.RequestHeader().Set("Authorization", "Bearer "+c.key.Reveal())
		}
		return conn
	}
}

func (c *clientKey) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// ---- what a caller may do with a connector

// Require returns the authenticated caller of a request's context, or an
// Unauthenticated API error when there is none: a handler mounted without
// Interceptor refuses every call instead of serving it to anyone.
func Require(ctx context.Context) (Caller, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Identity == "" {
		return Caller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("no authenticated caller: "+howToSendKey))
	}
	return c, nil
}

// MayActOn refuses, with a PermissionDenied API error that names the role
// needed, a caller who may not act on connector conn (start its sync,
// confirm its held removals, manage its event hook, submit provisioning
// requests to it). A Super Administrator may act on every connector; a
// Connector Administrator on the connectors whose owners hold their
// identity. Reading needs no role. what names the action, such as
// "starting a sync".
func MayActOn(c Caller, conn *eventsv1.Connector, what string) error {
	if c.Has(SuperAdmin) || (c.Has(ConnectorAdmin) && IsOwner(conn, c.Identity)) {
		return nil
	}
	id := conn.GetId()
	if !c.Has(ConnectorAdmin) {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
			"%s on connector %s takes the Super Administrator role, or the Connector Administrator role and being an owner of %s; "+
				"your identity (%s) holds neither role: a Super Administrator gives it with `accessbus admin roles assign --email <your email> --role connector_admin`",
			what, id, id, c.Identity))
	}
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
		"%s on connector %s takes being one of its owners or the Super Administrator role; your identity (%s) is a Connector Administrator "+
			"but not an owner of %s (%s): an owner or a Super Administrator can add you (`accessbus connectors set-owners %s` with every owner's --owner <email>, yours too)",
		what, id, c.Identity, id, DescribeOwners(conn), id))
}

// DescribeOwners names conn's owners by email for a refusal ("its owners
// are a@x, b@y", or "it has no owners"), so the caller knows whom to ask.
func DescribeOwners(conn *eventsv1.Connector) string {
	var emails []string
	for _, o := range conn.GetOwners() {
		emails = append(emails, o.GetEmail())
	}
	if len(emails) == 0 {
		return "it has no owners"
	}
	return "its owners are " + strings.Join(emails, ", ")
}

// IsOwner says whether identity is one of conn's owners.
func IsOwner(conn *eventsv1.Connector, identity string) bool {
	if identity == "" {
		return false
	}
	return slices.ContainsFunc(conn.GetOwners(), func(o *eventsv1.ConnectorOwner) bool { return o.GetIdentityId() == identity })
}
