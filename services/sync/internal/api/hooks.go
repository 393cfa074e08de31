package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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
	e, err := s.d.Hooks.Get(ctx, connector)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("read hook registration of %s: %w", connector, err))
	}
	r := &syncv1.HookRegistration{}
	if err := proto.Unmarshal(e.Value(), r); err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("decode hook registration of %s: %w", connector, err))
	}
	return r, nil
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
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	uri, err := hookURL(req.Msg.GetUrl(), c.GetId())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	client, err := s.okta(ctx, c)
	if err != nil {
		return nil, err
	}
	old, err := s.registration(ctx, c.GetId())
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
	if old != nil && old.GetHookId() != h.ID {
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
		out.Problem = "no event hook is registered: run `accessbus hooks register --connector " + c.GetId() + " --url https://<accessbus host>`; until then changes arrive through the System Log"
		return connect.NewResponse(out), nil
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
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
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
