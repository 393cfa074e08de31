package connectors_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/connectors"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/telemetry"
)

const rawHookSecret = "hookSECRETvalue-0123456789abcdef"

func TestHookSecretRoundTripAndVersions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if _, _, err := e.store.HookSecret(ctx, "c1"); !errors.Is(err, connectors.ErrNoHookSecret) {
		t.Fatalf("before any secret: got %v, want ErrNoHookSecret", err)
	}
	if _, _, err := e.store.HookSecretVersion(ctx, "c1"); !errors.Is(err, connectors.ErrNoHookSecret) {
		t.Fatalf("version before any secret: got %v, want ErrNoHookSecret", err)
	}
	v1, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret))
	if err != nil {
		t.Fatal(err)
	}
	got, v, err := e.store.HookSecret(ctx, "c1")
	if err != nil || v != v1 || got.Reveal() != rawHookSecret {
		t.Fatalf("HookSecret = %v, %d, %v; want the secret at version %d", got, v, err, v1)
	}
	v2, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret+"-2"))
	if err != nil {
		t.Fatal(err)
	}
	if v2 <= v1 {
		t.Fatalf("second version %d not above %d", v2, v1)
	}
	if vv, _, err := e.store.HookSecretVersion(ctx, "c1"); err != nil || vv != v2 {
		t.Fatalf("HookSecretVersion = %d, %v; want %d", vv, err, v2)
	}
	got, _, _ = e.store.HookSecret(ctx, "c1")
	if got.Reveal() != rawHookSecret+"-2" {
		t.Fatal("the new secret is not the one read back")
	}
	// The hook secret and the API token are separate secrets.
	if _, _, err := e.store.Token(ctx, "c1"); !errors.Is(err, connectors.ErrNoToken) {
		t.Fatalf("a hook secret must not be a token: %v", err)
	}
	if _, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.store.HookSecret(ctx, "c1"); got.Reveal() != rawHookSecret+"-2" {
		t.Fatal("setting the token changed the hook secret")
	}
}

func TestHookSecretConcurrentSetsGetDistinctVersions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	const n = 8
	versions := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			versions[i], errs[i] = e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret))
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[versions[i]] {
			t.Fatalf("version %d given twice", versions[i])
		}
		seen[versions[i]] = true
	}
}

func TestHookSecretRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if _, err := e.store.SetHookSecret(ctx, "nope", telemetry.NewSecret(rawHookSecret)); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("unknown connector: got %v, want ErrNotFound", err)
	}
	if _, err := e.store.SetHookSecret(ctx, "Bad.ID", telemetry.NewSecret(rawHookSecret)); !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("bad id: got %v, want ErrInvalid", err)
	}
	if _, _, err := e.store.HookSecret(ctx, "Bad.ID"); !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("bad id: got %v, want ErrInvalid", err)
	}
	if _, err := e.store.SetHookSecret(ctx, "c1", telemetry.Secret{}); !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("empty secret: got %v, want ErrInvalid", err)
	}
	_, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret("abc\r\nX-Evil: 1"))
	if !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("secret with a line break: got %v, want ErrInvalid", err)
	}
	if strings.Contains(err.Error(), "abc") {
		t.Fatalf("the error shows the secret: %v", err)
	}
	keyless, err := connectors.Open(ctx, e.js, connectors.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyless.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret)); !errors.Is(err, connectors.ErrNoKey) {
		t.Fatalf("no key: got %v, want ErrNoKey", err)
	}
	if _, _, err := keyless.HookSecret(ctx, "c1"); !errors.Is(err, connectors.ErrNoKey) {
		t.Fatalf("no key: got %v, want ErrNoKey", err)
	}
}

func TestHookSecretWrongKeyAndSwappedEntries(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	e.create(t, "c2")
	if _, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret)); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, e.js, newKey(t))
	_, _, err := other.HookSecret(ctx, "c1")
	if !errors.Is(err, secrets.ErrDecrypt) || strings.Contains(err.Error(), rawHookSecret) {
		t.Fatalf("another key: got %v, want ErrDecrypt without the secret", err)
	}
	// An attacker with write access to the bucket moves sealed values
	// around: c1's hook secret under c2's hook key, the token under the
	// hook key. The associated data makes both fail to open.
	kv := secretsKV(t, e)
	en, err := kv.Get(ctx, "c1.hook")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "c2.hook", en.Value()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.HookSecret(ctx, "c2"); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("c1's secret under c2: got %v, want ErrDecrypt", err)
	}
	if _, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	tok, err := kv.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "c1.hook", tok.Value()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.HookSecret(ctx, "c1"); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("the token under the hook key: got %v, want ErrDecrypt", err)
	}
}

func TestDeleteHookSecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if err := e.store.DeleteHookSecret(ctx, "c1"); err != nil {
		t.Fatalf("deleting a missing secret: %v", err)
	}
	v1, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret))
	if err != nil {
		t.Fatal(err)
	}
	_, rev1, err := e.store.HookSecretVersion(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteHookSecret(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.HookSecret(ctx, "c1"); !errors.Is(err, connectors.ErrNoHookSecret) {
		t.Fatalf("after delete: got %v, want ErrNoHookSecret", err)
	}
	if err := e.store.DeleteHookSecret(ctx, "Bad.ID"); !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("bad id: got %v, want ErrInvalid", err)
	}
	// A secret set again starts over at version 1, but its revision is
	// new: a receiver's cache keyed by both never serves the old secret.
	if v, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret(rawHookSecret)); err != nil || v != v1 {
		t.Fatalf("set after delete: %d, %v", v, err)
	}
	if _, rev2, err := e.store.HookSecretVersion(ctx, "c1"); err != nil || rev2 <= rev1 {
		t.Fatalf("revision after delete and set: %d (before %d), %v", rev2, rev1, err)
	}
}
