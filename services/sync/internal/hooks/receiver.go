package hooks

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// PathPrefix is where the Receiver listens: POST and GET
// PathPrefix+"<connector>". Mount the Receiver on it (mux.Handle(PathPrefix, r)).
const PathPrefix = "/hooks/okta/"

// HeaderChallenge carries Okta's one-time verification challenge.
const HeaderChallenge = "X-Okta-Verification-Challenge"

// Defaults of ReceiverOptions.
const (
	DefaultMaxBody        = 1 << 20
	DefaultPublishTimeout = 2 * time.Second
)

// SecretSource gives the Receiver the connectors and their hook secrets;
// *connectors.Store is one.
type SecretSource interface {
	// Get returns the connector's record, or an error wrapping
	// connectors.ErrNotFound.
	Get(ctx context.Context, id string) (*eventsv1.Connector, error)
	// HookSecret opens the connector's hook secret, or returns an error
	// wrapping connectors.ErrNoHookSecret.
	HookSecret(ctx context.Context, id string) (telemetry.Secret, int64, error)
	// HookSecretVersion returns the hook secret's version and entry
	// revision without opening it, or an error wrapping
	// connectors.ErrNoHookSecret.
	HookSecretVersion(ctx context.Context, id string) (int64, uint64, error)
}

// ReceiverOptions tune a Receiver. Zero values take the defaults.
type ReceiverOptions struct {
	// MaxBody is the largest delivery accepted, in bytes (default 1 MiB);
	// a larger one is answered 413 and not stored.
	MaxBody int64
	// PublishTimeout bounds storing a delivery (default 2 s), well inside
	// the 3 s Okta waits: past it the answer is 503, and Okta retries once.
	PublishTimeout time.Duration
	// Logger receives one line per refused or failed request; nil discards.
	Logger *slog.Logger
}

// Receiver is the HTTP endpoint of Okta event hooks. It answers Okta's
// verification GET and stores each authenticated delivery POST, byte for
// byte, in the OKTA_HOOKS stream before answering 200. It never calls Okta.
type Receiver struct {
	bus     *bus.Bus
	secrets SecretSource
	opts    ReceiverOptions
	log     *slog.Logger

	mu    sync.Mutex
	cache map[string]cachedSecret
}

// cachedSecret is an opened hook secret, kept as its SHA-256 so that the
// comparison takes the same time whatever the lengths, and the plain
// secret does not linger in memory.
type cachedSecret struct {
	version  int64
	revision uint64
	sum      [sha256.Size]byte
}

// NewReceiver returns a Receiver storing deliveries with b and checking
// them against the hook secrets of src.
func NewReceiver(b *bus.Bus, src SecretSource, opts ReceiverOptions) *Receiver {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{bus: b, secrets: src, opts: opts, log: log, cache: map[string]cachedSecret{}}
}

// ServeHTTP answers GET (verification) and POST (delivery) on
// PathPrefix+"<connector>":
//   - 404: no such connector (or not a connector id);
//   - 401: no or wrong Authorization header, or no hook secret registered;
//   - 400: a GET without the challenge, a body that is not a delivery;
//   - 413: a body over MaxBody;
//   - 503: the secret or the stream could not be reached (Okta retries once);
//   - 200: the challenge echoed, or the delivery stored.
//
// Nothing is stored unless the answer is 200.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	connector, ok := strings.CutPrefix(req.URL.Path, PathPrefix)
	if !ok || subjects.ValidateConnectorID(connector) != nil {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodPost && req.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if status, why := r.authorize(req.Context(), connector, req.Header.Get("Authorization")); status != 0 {
		r.log.Warn("okta hook refused", "connector", connector, "method", req.Method, "status", status, "reason", why)
		http.Error(w, http.StatusText(status), status)
		return
	}
	if req.Method == http.MethodGet {
		r.verify(w, req, connector)
		return
	}
	r.deliver(w, req, connector)
}

// authorize returns 0 when header is the connector's hook secret, else the
// status to answer and why (for the log: never the secret or the header).
func (r *Receiver) authorize(ctx context.Context, connector, header string) (int, string) {
	sum, err := r.secretSum(ctx, connector)
	switch {
	case errors.Is(err, connectors.ErrNoHookSecret):
		if _, gerr := r.secrets.Get(ctx, connector); errors.Is(gerr, connectors.ErrNotFound) {
			return http.StatusNotFound, "no such connector"
		}
		return http.StatusUnauthorized, "the connector has no event hook secret"
	case errors.Is(err, connectors.ErrNotFound):
		return http.StatusNotFound, "no such connector"
	case err != nil:
		return http.StatusServiceUnavailable, "read the hook secret: " + err.Error()
	}
	if header == "" {
		return http.StatusUnauthorized, "no Authorization header"
	}
	got := sha256.Sum256([]byte(header))
	if subtle.ConstantTimeCompare(got[:], sum[:]) != 1 {
		return http.StatusUnauthorized, "wrong Authorization header"
	}
	return 0, ""
}

// secretSum returns the SHA-256 of the connector's hook secret, opening it
// only when its version or entry changed since it was last opened.
func (r *Receiver) secretSum(ctx context.Context, connector string) ([sha256.Size]byte, error) {
	version, revision, err := r.secrets.HookSecretVersion(ctx, connector)
	if err != nil {
		if errors.Is(err, connectors.ErrNoHookSecret) {
			r.mu.Lock()
			delete(r.cache, connector)
			r.mu.Unlock()
		}
		return [sha256.Size]byte{}, err
	}
	r.mu.Lock()
	c, ok := r.cache[connector]
	r.mu.Unlock()
	if ok && c.version == version && c.revision == revision {
		return c.sum, nil
	}
	secret, opened, err := r.secrets.HookSecret(ctx, connector)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	c = cachedSecret{version: opened, revision: revision, sum: sha256.Sum256([]byte(secret.Reveal()))}
	if opened != version {
		// Changed between the two reads: check against what was opened, but
		// do not cache it under the other version's revision.
		return c.sum, nil
	}
	r.mu.Lock()
	r.cache[connector] = c
	r.mu.Unlock()
	return c.sum, nil
}

// verify answers Okta's one-time verification GET.
func (r *Receiver) verify(w http.ResponseWriter, req *http.Request, connector string) {
	challenge := req.Header.Get(HeaderChallenge)
	if challenge == "" {
		r.log.Warn("okta hook verification without a challenge", "connector", connector)
		http.Error(w, "missing "+HeaderChallenge, http.StatusBadRequest)
		return
	}
	body, err := json.Marshal(map[string]string{"verification": challenge})
	if err != nil {
		http.Error(w, "encode the answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	r.log.Info("okta hook verified", "connector", connector)
}

// deliver stores one delivery, then answers 200.
func (r *Receiver) deliver(w http.ResponseWriter, req *http.Request, connector string) {
	if req.ContentLength > r.opts.MaxBody {
		r.tooLarge(w, connector, req.ContentLength)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		r.tooLarge(w, connector, -1)
		return
	case err != nil:
		r.log.Warn("okta hook body unreadable", "connector", connector, "err", err)
		http.Error(w, "read the body", http.StatusBadRequest)
		return
	}
	d, err := Parse(body)
	if err != nil {
		r.log.Warn("okta hook delivery refused", "connector", connector, "status", http.StatusBadRequest, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	subject, err := subjects.OktaHook(connector)
	if err != nil {
		http.NotFound(w, req)
		return
	}
	// Okta's retry of a delivery carries the same eventId: the stream drops
	// it as a duplicate within its dedupe window, and the intake drops its
	// events by uuid after that.
	id := subjects.MsgID("okta", connector, "hook", d.EventID)
	ctx, cancel := context.WithTimeout(req.Context(), r.opts.PublishTimeout)
	defer cancel()
	ack, err := r.bus.PublishRaw(ctx, subject, id, "application/json", body)
	if err != nil {
		r.log.Error("okta hook delivery not stored; Okta will retry once", "connector", connector, "event_id", d.EventID, "err", err)
		http.Error(w, "the delivery could not be stored", http.StatusServiceUnavailable)
		return
	}
	r.log.Debug("okta hook delivery stored", "connector", connector, "event_id", d.EventID,
		"events", len(d.Events), "seq", ack.Sequence, "duplicate", ack.Duplicate)
	w.WriteHeader(http.StatusOK)
}

func (r *Receiver) tooLarge(w http.ResponseWriter, connector string, length int64) {
	r.log.Warn("okta hook delivery too large", "connector", connector, "content_length", length,
		"max_body", strconv.FormatInt(r.opts.MaxBody, 10))
	http.Error(w, "the delivery is larger than "+strconv.FormatInt(r.opts.MaxBody, 10)+" bytes", http.StatusRequestEntityTooLarge)
}
