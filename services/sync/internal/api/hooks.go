package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// HooksBucket holds each connector's event hook registration.
const HooksBucket = "SYNC_HOOKS"

// OpenHooks declares the registrations bucket.
func OpenHooks(ctx context.Context, js jetstream.JetStream, replicas int, storage jetstream.StorageType) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: HooksBucket, Description: "accessbus sync: each connector's Okta event hook registration",
		History: 1, Replicas: max(1, replicas), Storage: storage,
	})
	if err != nil {
		return nil, fmt.Errorf("declare hooks bucket %s: %w", HooksBucket, err)
	}
	return kv, nil
}

// receiverPath is where accessbus receives a connector's deliveries.
func receiverPath(connector string) string { return "/hooks/okta/" + connector }

// hookURL checks the receiver URL a person gave: https (http only for
// loopback, as Okta requires), and the connector's receiver path, added when
// only a base URL was given.
func hookURL(raw, connector string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("url %q: give the public https URL of accessbus, such as https://accessbus.example.com%s", raw, receiverPath(connector))
	}
	if u.Scheme == "http" {
		if !okta.IsLoopbackHost(u.Hostname()) {
			return "", fmt.Errorf("url %q: Okta delivers event hooks over https only; use https://%s%s", raw, u.Host, u.Path)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("url %q: no query, fragment or user info: Okta authenticates with the hook's secret", raw)
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case p == "":
		u.Path = receiverPath(connector)
	case strings.HasSuffix(p, receiverPath(connector)):
		u.Path = p
	default:
		return "", fmt.Errorf("url %q: the path must end with %s (or give only the base URL)", raw, receiverPath(connector))
	}
	return u.String(), nil
}

// newHookSecret is 32 random bytes, URL-safe.
func newHookSecret() (telemetry.Secret, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return telemetry.Secret{}, fmt.Errorf("generate hook secret: %w", err)
	}
	return telemetry.NewSecret(base64.RawURLEncoding.EncodeToString(b)), nil
}

func (s *Server) registration(ctx context.Context, connector string) (*syncv1.HookRegistration, error) {
	r, _, err := s.registrationRev(ctx, connector)
	return r, err
}

// registrationRev is registration with the KV revision of its entry (0
// when there is none), for a compare-and-set.
func (s *Server) registrationRev(ctx context.Context, connector string) (*syncv1.HookRegistration, uint64, error) {
	e, err := s.d.Hooks.Get(ctx, connector)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, connect.NewError(connect.CodeUnavailable, fmt.Errorf("read hook registration of %s: %w", connector, err))
	}
	r := &syncv1.HookRegistration{}
	if err := proto.Unmarshal(e.Value(), r); err != nil {
		return nil, 0, connect.NewError(connect.CodeInternal, fmt.Errorf("decode hook registration of %s: %w", connector, err))
	}
	return r, e.Revision(), nil
}

// consoleManagedError refuses to register a hook through Okta's API over one
// managed in the Okta Admin Console.
func consoleManagedError(connector string) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the event hook of %s is managed in the Okta Admin Console: "+
		"delete it there (Workflow > Event Hooks) and run `accessbus hooks unregister --connector %s` first; one hook per connector", connector, connector))
}

// oktaError maps an Okta failure of a hook call to an API error a person can act on.
func oktaError(what string, err error) error {
	switch {
	case errors.Is(err, okta.ErrPermissionDenied):
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s: the connector's token may not manage event hooks: "+
			"its admin needs the Super Administrator role; or register the hook in the Okta Admin Console (Workflow > Event Hooks), see docs/realtime.md: %w", what, err))
	case errors.Is(err, okta.ErrInvalidInput):
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: Okta refused it: %w", what, err))
	case errors.Is(err, okta.ErrInvalidCredentials):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: Okta rejected the connector's token: set a new one: %w", what, err))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: %w", what, err))
}

// RegisterHook implements SyncServiceHandler.
func (s *Server) RegisterHook(ctx context.Context, req *connect.Request[syncv1.RegisterHookRequest]) (*connect.Response[syncv1.RegisterHookResponse], error) {
	c, _, err := s.actOn(ctx, req.Msg.GetConnectorId(), "registering the event hook")
	if err != nil {
		return nil, err
	}
	uri, err := hookURL(req.Msg.GetUrl(), c.GetId())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	old, err := s.registration(ctx, c.GetId())
	if err != nil {
		return nil, err
	}
	if old.GetConsoleManaged() {
		// Its new secret would lock the console's hook out.
		return nil, consoleManagedError(c.GetId())
	}
	client, err := s.okta(ctx, c)
	if err != nil {
		return nil, err
	}
	secret, err := newHookSecret()
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	// The receiver must know the new secret before Okta's challenge arrives.
	version, err := s.d.Connectors.SetHookSecret(ctx, c.GetId(), secret)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("store the hook secret of %s: %w", c.GetId(), err))
	}
	h, err := client.CreateEventHook(ctx, okta.EventHookSpec{Name: "accessbus " + c.GetId(), URI: uri, EventTypes: s.d.HookEventTypes, Secret: secret})
	if err != nil {
		return nil, oktaError("create the event hook", err)
	}
	reg := &syncv1.HookRegistration{ConnectorId: c.GetId(), HookId: h.ID, Url: uri, EventTypes: h.EventTypes,
		SecretVersion: version, RegisteredAt: timestamppb.Now()}
	b, err := proto.Marshal(reg)
	if err == nil {
		_, err = s.d.Hooks.Put(ctx, c.GetId(), b)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("record hook %s of %s (it exists in Okta; register again to replace it): %w", h.ID, c.GetId(), err))
	}
	// A replaced hook would deliver with a secret no longer accepted.
	if old.GetHookId() != "" && old.GetHookId() != h.ID {
		if _, err := client.DeactivateEventHook(ctx, old.GetHookId()); err == nil {
			_ = client.DeleteEventHook(ctx, old.GetHookId())
		}
	}
	if h.Status != "ACTIVE" {
		if h, err = client.ActivateEventHook(ctx, h.ID); err != nil {
			return nil, oktaError("activate the event hook", err)
		}
	}
	if h, err = client.VerifyEventHook(ctx, h.ID); err != nil {
		return nil, oktaError("verify the event hook (Okta could not reach "+uri+" or got a wrong answer; is that URL public and served by accessbus?)", err)
	}
	return connect.NewResponse(&syncv1.RegisterHookResponse{Registration: reg, Status: h.Status, VerificationStatus: h.VerificationStatus}), nil
}

// GetHook implements SyncServiceHandler.
func (s *Server) GetHook(ctx context.Context, req *connect.Request[syncv1.GetHookRequest]) (*connect.Response[syncv1.GetHookResponse], error) {
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	reg, err := s.registration(ctx, c.GetId())
	if err != nil {
		return nil, err
	}
	out := &syncv1.GetHookResponse{Registration: reg}
	if reg == nil {
		out.Problem = "no event hook is registered: run `accessbus hooks register --connector " + c.GetId() + " --url https://<accessbus host>`" +
			" (or create it in the Okta Admin Console and run `accessbus hooks set-secret --connector " + c.GetId() + " --secret-stdin`, see docs/realtime.md);" +
			" until then changes arrive through the System Log"
		return connect.NewResponse(out), nil
	}
	if reg.GetConsoleManaged() {
		return connect.NewResponse(s.consoleHookStatus(ctx, c.GetId(), out)), nil
	}
	client, err := s.okta(ctx, c)
	if err != nil {
		out.Problem = "Okta could not be asked: " + err.Error()
		return connect.NewResponse(out), nil
	}
	h, err := client.GetEventHook(ctx, reg.GetHookId())
	switch {
	case errors.Is(err, okta.ErrNotFound):
		out.Problem = "the hook is gone from Okta: register it again"
	case err != nil:
		out.Problem = "Okta could not be asked: " + err.Error()
	default:
		out.Status, out.VerificationStatus = h.Status, h.VerificationStatus
		switch {
		case h.Status != "ACTIVE":
			out.Problem = "the hook is " + strings.ToLower(h.Status) + " in Okta: activate it or register it again"
		case h.VerificationStatus != "VERIFIED":
			out.Problem = "the hook is not verified: register it again once its URL is reachable from Okta"
		}
	}
	return connect.NewResponse(out), nil
}

// UnregisterHook implements SyncServiceHandler.
func (s *Server) UnregisterHook(ctx context.Context, req *connect.Request[syncv1.UnregisterHookRequest]) (*connect.Response[syncv1.UnregisterHookResponse], error) {
	c, _, err := s.actOn(ctx, req.Msg.GetConnectorId(), "unregistering the event hook")
	if err != nil {
		return nil, err
	}
	reg, err := s.registration(ctx, c.GetId())
	if err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("connector %s has no event hook registered", c.GetId()))
	}
	if reg.GetConsoleManaged() {
		return s.unregisterConsoleHook(ctx, c.GetId())
	}
	client, err := s.okta(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := client.DeactivateEventHook(ctx, reg.GetHookId()); err != nil && !errors.Is(err, okta.ErrNotFound) {
		return nil, oktaError("deactivate the event hook", err)
	}
	if err := client.DeleteEventHook(ctx, reg.GetHookId()); err != nil && !errors.Is(err, okta.ErrNotFound) {
		return nil, oktaError("delete the event hook", err)
	}
	if err := s.d.Hooks.Delete(ctx, c.GetId()); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("forget hook %s of %s: %w", reg.GetHookId(), c.GetId(), err))
	}
	return connect.NewResponse(&syncv1.UnregisterHookResponse{HookId: reg.GetHookId()}), nil
}

// okta returns the connector's Okta client, or an API error saying why not.
func (s *Server) okta(ctx context.Context, c *eventsv1.Connector) (*okta.Client, error) {
	if !c.GetTokenSet() {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("connector %s has no API token: set it first", c.GetId()))
	}
	client, err := s.d.Okta(ctx, c)
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("connector %s: %w", c.GetId(), err))
	}
	return client, nil
}

// Limits of a hook secret set by hand (SetHookSecret). Okta's console takes
// any value; accessbus wants one that cannot be guessed, and that fits a
// header.
const (
	minHookSecretChars = 16
	maxHookSecretBytes = 1024
)

// checkHookSecret says what is wrong with a secret given by hand, in words
// that never quote it.
func checkHookSecret(secret string) error {
	switch {
	case secret == "":
		return errors.New("secret is empty: give the Authentication secret typed for the event hook in the Okta Admin Console")
	case len(secret) > maxHookSecretBytes:
		return fmt.Errorf("secret is longer than %d bytes: use a shorter random value, in the Okta Admin Console and here", maxHookSecretBytes)
	case utf8.RuneCountInString(secret) < minHookSecretChars:
		return fmt.Errorf("secret is shorter than %d characters: Okta's console accepts any value, but accessbus requires at least %d so that it cannot be guessed; "+
			"use a long random value (such as the output of `openssl rand -base64 32`), in the Okta Admin Console and here", minHookSecretChars, minHookSecretChars)
	}
	for _, r := range secret {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return errors.New("secret holds whitespace or a control character: Okta sends the value in a header, so use one without spaces, tabs or line breaks " +
				"(in the Okta Admin Console and here; a file given on standard input may only end with one newline)")
		}
	}
	return nil
}

// SetHookSecret implements SyncServiceHandler.
func (s *Server) SetHookSecret(ctx context.Context, req *connect.Request[syncv1.SetHookSecretRequest]) (*connect.Response[syncv1.SetHookSecretResponse], error) {
	c, _, err := s.actOn(ctx, req.Msg.GetConnectorId(), "setting the event hook secret")
	if err != nil {
		return nil, err
	}
	if err := checkHookSecret(req.Msg.GetSecret()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	old, rev, err := s.registrationRev(ctx, c.GetId())
	if err != nil {
		return nil, err
	}
	if id := old.GetHookId(); id != "" {
		// Its deliveries carry the secret accessbus generated; replacing it
		// would lock that hook out.
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("event hook %s of %s was registered through Okta's API (`accessbus hooks register`) with a secret accessbus generated: "+
			"run `accessbus hooks unregister --connector %s` first; one hook per connector", id, c.GetId(), c.GetId()))
	}
	version, err := s.d.Connectors.SetHookSecret(ctx, c.GetId(), telemetry.NewSecret(req.Msg.GetSecret()))
	if err != nil {
		return nil, hookSecretError(c.GetId(), err)
	}
	reg := &syncv1.HookRegistration{ConnectorId: c.GetId(), Url: receiverPath(c.GetId()), EventTypes: slices.Clone(s.d.HookEventTypes),
		SecretVersion: version, RegisteredAt: timestamppb.Now(), ConsoleManaged: true}
	b, err := proto.Marshal(reg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("encode the hook registration of %s: %w", c.GetId(), err))
	}
	if rev == 0 {
		_, err = s.d.Hooks.Create(ctx, c.GetId(), b)
	} else {
		_, err = s.d.Hooks.Update(ctx, c.GetId(), b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("record the hook registration of %s: it changed meanwhile (another registration?): "+
			"see `accessbus hooks status --connector %s` and set the secret again", c.GetId(), c.GetId()))
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("record the hook registration of %s (the secret is stored; set it again to record it): %w", c.GetId(), err))
	}
	// Versions count from 1 again after a delete, so above 1 means a secret
	// was there when this one was stored.
	return connect.NewResponse(&syncv1.SetHookSecretResponse{Registration: reg, Replaced: version > 1}), nil
}

// hookSecretError maps a failure of connectors.Store.SetHookSecret (whose
// errors never hold the secret) to an API error.
func hookSecretError(connector string, err error) error {
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("connector %q does not exist: list them with `accessbus connectors list`", connector))
	case errors.Is(err, connectors.ErrNoKey):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("store the hook secret of %s: the sync service has no secrets key: %w", connector, err))
	case errors.Is(err, connectors.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("store the hook secret of %s: %w", connector, err))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("store the hook secret of %s: %w", connector, err))
}

// consoleHookStatus fills out for a hook managed in the Okta Admin Console:
// accessbus cannot see it in Okta, only whether it holds its secret.
func (s *Server) consoleHookStatus(ctx context.Context, connector string, out *syncv1.GetHookResponse) *syncv1.GetHookResponse {
	out.Note = "the event hook is managed in the Okta Admin Console (Workflow > Event Hooks), so accessbus does not ask Okta about it: " +
		"check there that it is active and verified, delivers to https://<accessbus host>" + receiverPath(connector) +
		" with the Authorization header, and subscribes to the event types listed here"
	_, _, err := s.d.Connectors.HookSecretVersion(ctx, connector)
	switch {
	case errors.Is(err, connectors.ErrNoHookSecret):
		out.Problem = "no hook secret is stored, so every delivery is refused: run `accessbus hooks set-secret --connector " + connector +
			" --secret-stdin` with the Authentication secret typed in the Okta Admin Console"
	case err != nil:
		out.Problem = "the hook secret could not be read: " + err.Error()
	}
	return out
}

// unregisterConsoleHook forgets a hook managed in the Okta Admin Console:
// the secret first, so that its deliveries are refused at once, then the
// registration. Okta is not called: the hook is the console's to delete.
func (s *Server) unregisterConsoleHook(ctx context.Context, connector string) (*connect.Response[syncv1.UnregisterHookResponse], error) {
	if err := s.d.Connectors.DeleteHookSecret(ctx, connector); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("delete the hook secret of %s: %w", connector, err))
	}
	if err := s.d.Hooks.Delete(ctx, connector); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("forget the console-managed hook of %s (its secret is deleted; unregister again): %w", connector, err))
	}
	return connect.NewResponse(&syncv1.UnregisterHookResponse{ConsoleManaged: true}), nil
}
