package syncsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"

	"github.com/accessbus/accessbus/services/sync/internal/access"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// AccessPublisher publishes one event and waits for the stream's ack;
// *bus.Bus is one.
type AccessPublisher interface {
	Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error)
}

// AccessConfig configures AccessHandler.
type AccessConfig struct {
	// Auth authenticates every call by its bearer API key (auth.Interceptor).
	// Required: the lists are who has what in an Okta org, for callers
	// with a key only. Any authenticated caller may read them.
	Auth *auth.Store
	// Hold holds a connector so that no sync run writes its state or
	// publishes its events until release is called: the connector's sync
	// lease. Required; a snapshot is consistent only if every writer of
	// access.<connector>.> holds the same lease while it writes. It may wait
	// for a running sync or return an error wrapping ErrAccessBusy.
	Hold func(ctx context.Context, connector string) (release func(), err error)
	// Publisher, when set, lets a snapshot finish a commit an interrupted
	// sync left journaled; without it such a snapshot fails (Unavailable)
	// until the next sync run.
	Publisher AccessPublisher
	// Exists, when set, says whether a connector exists, so that a
	// connector not synced yet lists nothing instead of being unknown.
	Exists func(ctx context.Context, connector string) (bool, error)
	// StateBucket is the state KV bucket; default SYNC_STATE.
	StateBucket string
	// StateStorage is the bucket's storage when it must be declared; file
	// unless jetstream.MemoryStorage (tests).
	StateStorage jetstream.StorageType
	// Log receives the service's log; nil discards it.
	Log *slog.Logger
}

// ErrAccessBusy is what AccessConfig.Hold wraps when it will not wait for a
// running sync; the API then answers Unavailable.
var ErrAccessBusy = access.ErrBusy

// AccessHandler returns the AccessService Connect handler (proto
// accessbus.access.v1) and the path to mount it on, serving the sync state
// in js, every call authenticated by cfg.Auth. docs/access.md describes the
// API and the snapshot guarantee.
func AccessHandler(ctx context.Context, js jetstream.JetStream, cfg AccessConfig, opts ...connect.HandlerOption) (string, http.Handler, error) {
	if cfg.Auth == nil {
		return "", nil, errors.New("access service: AccessConfig.Auth is required: every call is authenticated by its API key")
	}
	store, err := state.Open(ctx, js, state.Options{Bucket: cfg.StateBucket, Storage: cfg.StateStorage})
	if err != nil {
		return "", nil, fmt.Errorf("access service: %w", err)
	}
	d := access.Deps{JS: js, State: store, Hold: cfg.Hold, Exists: cfg.Exists, Log: cfg.Log}
	if cfg.Publisher != nil {
		d.Publisher = cfg.Publisher
	}
	svc, err := access.New(d)
	if err != nil {
		return "", nil, err
	}
	path, h := svc.Handler(append([]connect.HandlerOption{connect.WithInterceptors(auth.Interceptor(cfg.Auth))}, opts...)...)
	return path, h, nil
}
