package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/auth/authtest"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/sync/internal/api"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
	"github.com/accessbus/accessbus/services/sync/internal/runs"
)

// consoleSecret is what an administrator typed in the Okta Admin Console.
const consoleSecret = "console-typed-S3cret-0123456789"

// env is the SyncService and the hook receiver behind one real HTTP server,
// on an embedded JetStream, with connectors c1 and c2 (no API token: a hook
// managed in the Okta Admin Console needs none, and Okta is never called).
// Every call of the SyncService is authenticated by its API key.
type env struct {
	store *connectors.Store
	hooks jetstream.KeyValue
	srv   *httptest.Server
	// auth holds the API keys; every call of the SyncService needs one.
	auth *auth.Store
	runs *runs.Store
	js   jetstream.JetStream
	// client calls as a Super Administrator.
	client syncv1connect.SyncServiceClient
	logs   *testkit.Buffer
}

type envOptions struct {
	noKey bool
	// wrapHooks, when set, wraps the registrations bucket the API uses.
	wrapHooks func(jetstream.KeyValue) jetstream.KeyValue
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := bus.New(js, bus.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var key secrets.Key
	if !o.noKey {
		if key, err = secrets.NewKey(); err != nil {
			t.Fatal(err)
		}
	}
	store, err := connectors.Open(ctx, js, connectors.Options{Key: key, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if _, err := store.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: "https://" + id + ".okta.com"}); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := api.OpenHooks(ctx, js, 1, jetstream.MemoryStorage)
	if err != nil {
		t.Fatal(err)
	}
	apiKV := kv
	if o.wrapHooks != nil {
		apiKV = o.wrapHooks(kv)
	}
	keys, err := auth.Open(ctx, js, auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := runs.Open(ctx, js, runs.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	path, h := api.New(api.Deps{Bus: b, Connectors: store, Hooks: apiKV, HookEventTypes: hooks.HookEventTypes(),
		Runs: rs, Leases: lease.New(lease.NewMemory(), "api", log),
		Okta: func(context.Context, *eventsv1.Connector) (*okta.Client, error) {
			t.Error("Okta was called for a hook managed in the Okta Admin Console")
			return nil, errors.New("no Okta in this test")
		}}, connect.WithInterceptors(auth.Interceptor(keys)))
	mux := http.NewServeMux()
	mux.Handle(path, h)
	mux.Handle(hooks.PathPrefix, hooks.NewReceiver(b, store, hooks.ReceiverOptions{Logger: log}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{store: store, hooks: kv, srv: srv, auth: keys, runs: rs, js: js, logs: logs}
	e.client = e.clientWithKey(e.key(t, "idn-root", auth.SuperAdmin))
	return e
}

// key makes an API key for identity, holding roles.
func (e *env) key(t *testing.T, identity string, roles ...auth.Role) telemetry.Secret {
	t.Helper()
	return authtest.Key(t, e.auth, identity, "test", roles...)
}

// clientWithKey calls the SyncService with key (none when unset).
func (e *env) clientWithKey(key telemetry.Secret) syncv1connect.SyncServiceClient {
	return syncv1connect.NewSyncServiceClient(e.srv.Client(), e.srv.URL, connect.WithInterceptors(auth.ClientKey(key)))
}

func (e *env) setSecret(connector, secret string) (*syncv1.SetHookSecretResponse, error) {
	resp, err := e.client.SetHookSecret(context.Background(), connect.NewRequest(&syncv1.SetHookSecretRequest{ConnectorId: connector, Secret: secret}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func (e *env) getHook(t *testing.T, connector string) *syncv1.GetHookResponse {
	t.Helper()
	resp, err := e.client.GetHook(context.Background(), connect.NewRequest(&syncv1.GetHookRequest{ConnectorId: connector}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg
}

// deliver sends what Okta sends: a verification GET (challenge set) or a
// delivery POST, with auth as the Authorization header.
func (e *env) deliver(t *testing.T, method, connector, auth, challenge string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","eventId":"ev-` + t.Name() + `","data":{"events":[]}}`)
	}
	req, err := http.NewRequest(method, e.srv.URL+hooks.PathPrefix+connector, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	if challenge != "" {
		req.Header.Set(hooks.HeaderChallenge, challenge)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noSecret fails when any of the texts holds one of the secrets.
func noSecret(t *testing.T, what string, texts []string, secrets ...string) {
	t.Helper()
	for _, s := range texts {
		for _, secret := range secrets {
			if secret != "" && strings.Contains(s, secret) {
				t.Fatalf("%s holds the secret: %s", what, s)
			}
		}
	}
}

// TestSetHookSecretConsoleHookLifecycle: a secret given by hand makes the
// receiver accept deliveries (and the verification) carrying it and refuse
// others; GetHook shows the hook as managed in the console without asking
// Okta; setting it again replaces it; unregistering forgets the secret and
// the registration, after which deliveries are refused.
func TestSetHookSecretConsoleHookLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if code, _ := e.deliver(t, http.MethodPost, "c1", consoleSecret, ""); code != http.StatusUnauthorized {
		t.Fatalf("delivery before set-secret: %d, want 401", code)
	}
	got, err := e.setSecret("c1", consoleSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := got.GetRegistration()
	if !r.GetConsoleManaged() || r.GetHookId() != "" || r.GetUrl() != "/hooks/okta/c1" || r.GetSecretVersion() != 1 || got.GetReplaced() ||
		!slices.Equal(r.GetEventTypes(), hooks.HookEventTypes()) || r.GetRegisteredAt() == nil || r.GetConnectorId() != "c1" {
		t.Fatalf("registration %v replaced %v", r, got.GetReplaced())
	}
	b, _ := protojson.Marshal(got)
	noSecret(t, "the response", []string{string(b), got.String()}, consoleSecret)

	// Okta's one-time verification, then a delivery.
	code, body := e.deliver(t, http.MethodGet, "c1", consoleSecret, "chal-123")
	if code != http.StatusOK || !strings.Contains(body, "chal-123") {
		t.Fatalf("verification: %d %s", code, body)
	}
	if code, body := e.deliver(t, http.MethodPost, "c1", consoleSecret, ""); code != http.StatusOK {
		t.Fatalf("delivery with the secret: %d %s", code, body)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c1", consoleSecret+"x", ""); code != http.StatusUnauthorized {
		t.Fatalf("delivery with a wrong secret: %d, want 401", code)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c2", consoleSecret, ""); code != http.StatusUnauthorized {
		t.Fatalf("another connector's delivery: %d, want 401", code)
	}

	st := e.getHook(t, "c1")
	if st.GetProblem() != "" || !strings.Contains(st.GetNote(), "Okta Admin Console") || st.GetStatus() != "" || !st.GetRegistration().GetConsoleManaged() {
		t.Fatalf("GetHook: %v", st)
	}
	if p := e.getHook(t, "c2").GetProblem(); !strings.Contains(p, "set-secret") || !strings.Contains(p, "hooks register") {
		t.Fatalf("GetHook of a connector without a hook: %q", p)
	}

	// A new secret replaces the old one at once.
	second := consoleSecret + "-rotated"
	got, err = e.setSecret("c1", second)
	if err != nil || !got.GetReplaced() || got.GetRegistration().GetSecretVersion() != 2 {
		t.Fatalf("set again: %v %v", got, err)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c1", consoleSecret, ""); code != http.StatusUnauthorized {
		t.Fatalf("delivery with the replaced secret: %d, want 401", code)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c1", second, ""); code != http.StatusOK {
		t.Fatalf("delivery with the new secret: %d", code)
	}

	un, err := e.client.UnregisterHook(ctx, connect.NewRequest(&syncv1.UnregisterHookRequest{ConnectorId: "c1"}))
	if err != nil || !un.Msg.GetConsoleManaged() || un.Msg.GetHookId() != "" {
		t.Fatalf("unregister: %v %v", un, err)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c1", second, ""); code != http.StatusUnauthorized {
		t.Fatalf("delivery after unregister: %d, want 401", code)
	}
	if _, _, err := e.store.HookSecretVersion(ctx, "c1"); !errors.Is(err, connectors.ErrNoHookSecret) {
		t.Fatalf("secret after unregister: %v", err)
	}
	if st := e.getHook(t, "c1"); st.GetRegistration() != nil {
		t.Fatalf("registration after unregister: %v", st)
	}
	if _, err := e.client.UnregisterHook(ctx, connect.NewRequest(&syncv1.UnregisterHookRequest{ConnectorId: "c1"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("second unregister: %v", err)
	}
	// After an unregister, versions count from 1 again: nothing was replaced.
	if got, err := e.setSecret("c1", consoleSecret); err != nil || got.GetReplaced() {
		t.Fatalf("set after unregister: %v %v", got, err)
	}
	noSecret(t, "the log", []string{e.logs.String()}, consoleSecret, second)
}

// TestSetHookSecretValidation: each refused secret gets InvalidArgument
// with what to fix, never quotes the secret, and stores nothing.
func TestSetHookSecretValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		name, connector, secret string
		code                    connect.Code
		want                    string
	}{
		{"empty", "c1", "", connect.CodeInvalidArgument, "secret is empty"},
		{"15 characters", "c1", "abcdefghij12345", connect.CodeInvalidArgument, "at least 16"},
		{"15 characters, more bytes", "c1", strings.Repeat("é", 15), connect.CodeInvalidArgument, "at least 16"},
		{"over 1024 bytes", "c1", strings.Repeat("a", 1025), connect.CodeInvalidArgument, "longer than 1024 bytes"},
		{"space", "c1", "abcdefgh ijklmnopq", connect.CodeInvalidArgument, "whitespace"},
		{"tab", "c1", "abcdefgh\tijklmnopq", connect.CodeInvalidArgument, "whitespace"},
		{"trailing newline", "c1", "abcdefghijklmnopq\n", connect.CodeInvalidArgument, "whitespace"},
		{"CR", "c1", "abcdefghijklmnopq\r", connect.CodeInvalidArgument, "whitespace"},
		{"NUL", "c1", "abcdefgh\x00ijklmnopq", connect.CodeInvalidArgument, "control character"},
		{"escape", "c1", "abcdefgh\x1bijklmnopq", connect.CodeInvalidArgument, "control character"},
		{"no-break space", "c1", "abcdefgh\u00a0ijklmnopq", connect.CodeInvalidArgument, "whitespace"},
		{"unknown connector", "nosuch", consoleSecret, connect.CodeNotFound, "does not exist"},
		{"bad connector id", "Bad.Id", consoleSecret, connect.CodeInvalidArgument, "connector_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.setSecret(tc.connector, tc.secret)
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%v), want %v with %q", err, connect.CodeOf(err), tc.code, tc.want)
			}
			if len(tc.secret) >= 8 {
				noSecret(t, "the error", []string{err.Error()}, tc.secret)
			}
		})
	}
	if _, _, err := e.store.HookSecretVersion(ctx, "c1"); !errors.Is(err, connectors.ErrNoHookSecret) {
		t.Fatalf("a refused secret was stored: %v", err)
	}
	if st := e.getHook(t, "c1"); st.GetRegistration() != nil {
		t.Fatalf("a refused secret was registered: %v", st)
	}
	// The limits themselves are accepted.
	for _, s := range []string{strings.Repeat("a", 16), strings.Repeat("é", 16), strings.Repeat("b", 1024), "+/=!~-_.:;@#$%^&*()[]{}"} {
		if _, err := e.setSecret("c1", s); err != nil {
			t.Fatalf("secret of %d bytes refused: %v", len(s), err)
		}
	}
}

// TestSetHookSecretRefusedOverAPIRegisteredHook: a hook registered through
// Okta's API keeps its secret; set-secret says to unregister it first.
func TestSetHookSecretRefusedOverAPIRegisteredHook(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	// What RegisterHook leaves behind: its generated secret and the record.
	apiSecret := "generated-by-register-0123456789abcdef"
	v, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(apiSecret))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(&syncv1.HookRegistration{ConnectorId: "c1", HookId: "who1abc", Url: "https://accessbus.example.com/hooks/okta/c1", SecretVersion: v})
	if _, err := e.hooks.Put(ctx, "c1", b); err != nil {
		t.Fatal(err)
	}
	_, err = e.setSecret("c1", consoleSecret)
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "accessbus hooks unregister --connector c1") || !strings.Contains(err.Error(), "who1abc") {
		t.Fatalf("set-secret over an API hook: %v", err)
	}
	noSecret(t, "the error", []string{err.Error()}, consoleSecret, apiSecret)
	if code, _ := e.deliver(t, http.MethodPost, "c1", apiSecret, ""); code != http.StatusOK {
		t.Fatalf("the API hook's deliveries: %d, want 200", code)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c1", consoleSecret, ""); code != http.StatusUnauthorized {
		t.Fatalf("the refused secret: %d, want 401", code)
	}
}

// TestRegisterHookRefusedOverConsoleHook: registering through the API would
// replace the console hook's secret, so it is refused, before Okta is asked.
func TestRegisterHookRefusedOverConsoleHook(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.setSecret("c1", consoleSecret); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.RegisterHook(context.Background(), connect.NewRequest(&syncv1.RegisterHookRequest{ConnectorId: "c1", Url: "https://accessbus.example.com"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "managed in the Okta Admin Console") || !strings.Contains(err.Error(), "hooks unregister") {
		t.Fatalf("register over a console hook: %v", err)
	}
	if code, _ := e.deliver(t, http.MethodPost, "c1", consoleSecret, ""); code != http.StatusOK {
		t.Fatalf("the console hook's deliveries after the refusal: %d, want 200", code)
	}
}

// TestGetHookConsoleHookWithoutSecret: a console registration whose secret
// is gone is reported as a problem, with the command that fixes it.
func TestGetHookConsoleHookWithoutSecret(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.setSecret("c1", consoleSecret); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteHookSecret(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	st := e.getHook(t, "c1")
	if !strings.Contains(st.GetProblem(), "accessbus hooks set-secret --connector c1") || !st.GetRegistration().GetConsoleManaged() {
		t.Fatalf("GetHook: %v", st)
	}
}

// TestSetHookSecretWithoutSecretsKey: a sync service that cannot seal
// secrets says so instead of storing anything.
func TestSetHookSecretWithoutSecretsKey(t *testing.T) {
	e := newEnv(t, envOptions{noKey: true})
	_, err := e.setSecret("c1", consoleSecret)
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "secrets key") {
		t.Fatalf("set-secret without a key: %v", err)
	}
	noSecret(t, "the error", []string{err.Error()}, consoleSecret)
	if st := e.getHook(t, "c1"); st.GetRegistration() != nil {
		t.Fatalf("registered without a secret: %v", st)
	}
}

// racingKV is the real registrations bucket with another writer that
// records a registration right after SetHookSecret read none.
type racingKV struct {
	jetstream.KeyValue
	once sync.Once
}

func (k *racingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := k.KeyValue.Get(ctx, key)
	k.once.Do(func() {
		b, _ := proto.Marshal(&syncv1.HookRegistration{ConnectorId: key, HookId: "who-concurrent"})
		_, _ = k.KeyValue.Put(ctx, key, b)
	})
	return e, err
}

// TestSetHookSecretConcurrentRegistration: a registration recorded while
// set-secret ran is not overwritten; the caller is told to look and retry.
func TestSetHookSecretConcurrentRegistration(t *testing.T) {
	e := newEnv(t, envOptions{wrapHooks: func(kv jetstream.KeyValue) jetstream.KeyValue { return &racingKV{KeyValue: kv} }})
	_, err := e.setSecret("c1", consoleSecret)
	if connect.CodeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), "hooks status --connector c1") {
		t.Fatalf("set-secret racing a registration: %v", err)
	}
	noSecret(t, "the error", []string{err.Error()}, consoleSecret)
	entry, err := e.hooks.Get(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	var r syncv1.HookRegistration
	if err := proto.Unmarshal(entry.Value(), &r); err != nil || r.GetHookId() != "who-concurrent" {
		t.Fatalf("the concurrent registration was overwritten: %v %v", &r, err)
	}
}
