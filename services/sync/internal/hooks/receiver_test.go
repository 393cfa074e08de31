package hooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

func TestVerificationHandshake(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{})
	status, body := e.call(t, http.MethodGet, "c1", hookSecret, nil, "x-okta-verification-challenge", `chall"enge-<1>`)
	if status != http.StatusOK {
		t.Fatalf("verification: %d %s", status, body)
	}
	var answer struct{ Verification string }
	if err := json.Unmarshal(body, &answer); err != nil || answer.Verification != `chall"enge-<1>` {
		t.Fatalf("answer %s: %v", body, err)
	}
	for name, c := range map[string]struct {
		connector, auth, challenge string
		want                       int
	}{
		"wrong secret":      {"c1", "nope", "x", http.StatusUnauthorized},
		"no secret":         {"c1", "", "x", http.StatusUnauthorized},
		"no challenge":      {"c1", hookSecret, "", http.StatusBadRequest},
		"no hook secret":    {"c2", hookSecret, "x", http.StatusUnauthorized},
		"unknown connector": {"c9", hookSecret, "x", http.StatusNotFound},
		"not a connector":   {"C1.x", hookSecret, "x", http.StatusNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			var hdr []string
			if c.challenge != "" {
				hdr = []string{hooks.HeaderChallenge, c.challenge}
			}
			if status, body := e.call(t, http.MethodGet, c.connector, c.auth, nil, hdr...); status != c.want || bytes.Contains(body, []byte("verification")) {
				t.Fatalf("got %d %s, want %d without an answer", status, body, c.want)
			}
		})
	}
	if n := e.stored(t); n != 0 {
		t.Fatalf("verification stored %d messages", n)
	}
}

// TestRefusedDeliveriesStoreNothing: wrong or missing secret, unknown
// connector, oversized and malformed bodies, wrong methods.
func TestRefusedDeliveriesStoreNothing(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{MaxBody: 4096})
	good := delivery(t, "d1", membershipEvent("e1", "group.user_membership.add", "00g1", "00u1"))
	big := delivery(t, "d2", membershipEvent(strings.Repeat("x", 5000), "group.user_membership.add", "00g1", "00u1"))
	for name, c := range map[string]struct {
		method, connector, auth string
		body                    []byte
		want                    int
	}{
		"wrong secret":            {"POST", "c1", "wrong", good, http.StatusUnauthorized},
		"secret with a suffix":    {"POST", "c1", hookSecret + "x", good, http.StatusUnauthorized},
		"secret prefix":           {"POST", "c1", hookSecret[:10], good, http.StatusUnauthorized},
		"bearer secret":           {"POST", "c1", "Bearer " + hookSecret, good, http.StatusUnauthorized},
		"missing secret":          {"POST", "c1", "", good, http.StatusUnauthorized},
		"connector without hook":  {"POST", "c2", hookSecret, good, http.StatusUnauthorized},
		"unknown connector":       {"POST", "c9", hookSecret, good, http.StatusNotFound},
		"bad connector id":        {"POST", "C1", hookSecret, good, http.StatusNotFound},
		"nested path":             {"POST", "c1/x", hookSecret, good, http.StatusNotFound},
		"oversized":               {"POST", "c1", hookSecret, big, http.StatusRequestEntityTooLarge},
		"not json":                {"POST", "c1", hookSecret, []byte("hello"), http.StatusBadRequest},
		"empty":                   {"POST", "c1", hookSecret, []byte{}, http.StatusBadRequest},
		"json, not a delivery":    {"POST", "c1", hookSecret, []byte(`{"verification":"x"}`), http.StatusBadRequest},
		"delivery without id":     {"POST", "c1", hookSecret, delivery(t, ""), http.StatusBadRequest},
		"wrong method":            {"PUT", "c1", hookSecret, good, http.StatusMethodNotAllowed},
		"wrong secret, oversized": {"POST", "c1", "wrong", big, http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			if status, body := e.call(t, c.method, c.connector, c.auth, c.body); status != c.want {
				t.Fatalf("got %d %s, want %d", status, body, c.want)
			}
		})
	}
	if n := e.stored(t); n != 0 {
		t.Fatalf("refused deliveries stored %d messages", n)
	}
}

// TestOversizedWithoutContentLength: a chunked body is cut at MaxBody too.
func TestOversizedWithoutContentLength(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{MaxBody: 1024})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(delivery(t, "d1", membershipEvent(strings.Repeat("y", 4096), "group.user_membership.add", "00g1", "00u1")))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+hooks.PathPrefix+"c1", pr)
	req.Header.Set("Authorization", hookSecret)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.stored(t) != 0 {
		t.Fatalf("chunked oversized body: %d, %d stored", resp.StatusCode, e.stored(t))
	}
}

// TestDeliveryIsStoredBeforeTheAnswer: when the 200 arrives, the body is in
// OKTA_HOOKS byte for byte, on okta.<connector>.hook, with the id made of
// the eventId; Okta's retry of the same delivery is stored once.
func TestDeliveryIsStoredBeforeTheAnswer(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{})
	body := delivery(t, "d1", membershipEvent("e1", "group.user_membership.add", "00g1", "00u1"))
	if status, resp := e.call(t, "POST", "c1", hookSecret, body); status != http.StatusOK {
		t.Fatalf("delivery: %d %s", status, resp)
	}
	// No waiting: the answer came after the stream's ack.
	s, err := e.js.Stream(context.Background(), subjects.StreamOktaHooks)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), "okta.c1.hook")
	if err != nil {
		t.Fatalf("not stored when the 200 arrived: %v", err)
	}
	if !bytes.Equal(msg.Data, body) {
		t.Fatalf("stored %s, want the body as sent", msg.Data)
	}
	if got, want := msg.Header.Get(jetstream.MsgIDHeader), subjects.MsgID("okta", "c1", "hook", "d1"); got != want {
		t.Fatalf("Nats-Msg-Id %s, want %s", got, want)
	}
	if got := msg.Header.Get(bus.HeaderPayloadType); got != "application/json" {
		t.Fatalf("payload type %q", got)
	}
	for k, v := range msg.Header {
		if strings.Contains(strings.Join(v, ","), hookSecret) || strings.EqualFold(k, "Authorization") {
			t.Fatalf("the stored message carries the secret in header %s", k)
		}
	}
	// Okta retries after a timeout: the same delivery again.
	if status, _ := e.call(t, "POST", "c1", hookSecret, body); status != http.StatusOK {
		t.Fatalf("retry answered %d", status)
	}
	if n := e.stored(t); n != 1 {
		t.Fatalf("a delivery and its retry stored %d times", n)
	}
	// Another delivery is another message.
	if status, _ := e.call(t, "POST", "c1", hookSecret, delivery(t, "d2")); status != http.StatusOK {
		t.Fatalf("second delivery answered %d", status)
	}
	if n := e.stored(t); n != 2 {
		t.Fatalf("two deliveries stored as %d", n)
	}
	if strings.Contains(e.logs.String(), hookSecret) {
		t.Fatal("the secret reached the log")
	}
}

// TestSecretRotationIsPickedUp: a new secret version replaces the cached
// one at once; a deleted secret refuses everything.
func TestSecretRotationIsPickedUp(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{})
	ctx := context.Background()
	body := delivery(t, "d1")
	if status, _ := e.call(t, "POST", "c1", hookSecret, body); status != http.StatusOK {
		t.Fatalf("first secret: %d", status)
	}
	if _, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret("rotated-secret")); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.call(t, "POST", "c1", hookSecret, delivery(t, "d2")); status != http.StatusUnauthorized {
		t.Fatalf("old secret after rotation: %d", status)
	}
	if status, _ := e.call(t, "POST", "c1", "rotated-secret", delivery(t, "d3")); status != http.StatusOK {
		t.Fatalf("new secret: %d", status)
	}
	// Deleted and set again: the version starts over at 1, the cache must
	// still not serve the first secret.
	if err := e.store.DeleteHookSecret(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.call(t, "POST", "c1", "rotated-secret", delivery(t, "d4")); status != http.StatusUnauthorized {
		t.Fatalf("deleted secret: %d", status)
	}
	if _, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret("third-secret")); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.call(t, "POST", "c1", hookSecret, delivery(t, "d5")); status != http.StatusUnauthorized {
		t.Fatalf("first secret after delete and set: %d", status)
	}
	if status, _ := e.call(t, "POST", "c1", "third-secret", delivery(t, "d6")); status != http.StatusOK {
		t.Fatalf("third secret: %d", status)
	}
	if n := e.stored(t); n != 3 {
		t.Fatalf("stored %d, want 3", n)
	}
	for _, s := range []string{hookSecret, "rotated-secret", "third-secret"} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatalf("secret %q reached the log", s)
		}
	}
}

// TestStreamDownIs503: when the delivery cannot be stored, Okta gets a 5xx
// (and retries once), never a 200.
func TestStreamDownIs503(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{})
	if err := e.js.DeleteStream(context.Background(), subjects.StreamOktaHooks); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.call(t, "POST", "c1", hookSecret, delivery(t, "d1")); status != http.StatusServiceUnavailable {
		t.Fatalf("stream gone: %d, want 503", status)
	}
}

// TestSecretStoreDownIs503: when the hook secret cannot be read, Okta gets
// a 5xx (and retries once), never a 200 or a 401.
func TestSecretStoreDownIs503(t *testing.T) {
	e := newEnv(t, hooks.ReceiverOptions{})
	if err := e.js.DeleteKeyValue(context.Background(), connectors.BucketSecrets); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.call(t, "POST", "c1", hookSecret, delivery(t, "d1")); status != http.StatusServiceUnavailable {
		t.Fatalf("secrets bucket gone: %d, want 503", status)
	}
	if n := e.stored(t); n != 0 {
		t.Fatalf("stored %d", n)
	}
}
