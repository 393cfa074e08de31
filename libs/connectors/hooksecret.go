package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// hookSecretSuffix makes the key of a connector's event hook secret in
// BucketSecrets: "<id>.hook". A connector id never holds a dot, so the key
// can never be another connector's token.
const hookSecretSuffix = ".hook"

func hookSecretKey(id string) string { return id + hookSecretSuffix }

// hookSecretAAD binds a sealed hook secret to its connector and version,
// and sets it apart from the token: a sealed token copied under the hook
// key (or the other way round) does not open.
func hookSecretAAD(id string, version int64) []byte {
	return []byte("accessbus/connector-hook-secret\x00" + id + "\x00" + strconv.FormatInt(version, 10) + "\x00hook")
}

// SetHookSecret seals secret, the value Okta sends in the Authorization
// header of the connector's event hook, and stores it as the connector's
// new hook secret version, which it returns. The connector must exist. The
// secret never enters the record, an event or an error.
func (s *Store) SetHookSecret(ctx context.Context, id string, secret telemetry.Secret) (int64, error) {
	const op = "set event hook secret of connector"
	if err := checkID(op, id); err != nil {
		return 0, err
	}
	if s.key.IsZero() {
		return 0, fmt.Errorf("%s %s: %w: set %s", op, id, ErrNoKey, secrets.EnvKey)
	}
	if !secret.IsSet() {
		return 0, fmt.Errorf("%s %s: %w: the secret is empty", op, id, ErrInvalid)
	}
	if strings.ContainsAny(secret.Reveal(), "\r\n\x00") {
		// It travels in an HTTP header, which cannot carry these.
		return 0, fmt.Errorf("%s %s: %w: the secret holds a line break or NUL", op, id, ErrInvalid)
	}
	if _, err := s.Get(ctx, id); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	key := hookSecretKey(id)
	for range maxAttempts {
		var prevRev uint64
		version := int64(1)
		prev, rev, err := s.readHookSecret(ctx, id)
		switch {
		case errors.Is(err, ErrNoHookSecret):
		case err != nil:
			return 0, fmt.Errorf("%s %s: %w", op, id, err)
		default:
			prevRev, version = rev, prev.Version+1
		}
		sealed, err := secrets.Seal(s.key, []byte(secret.Reveal()), hookSecretAAD(id, version))
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", op, id, err)
		}
		data, err := json.Marshal(sealedToken{Version: version, KeyID: s.key.ID(), Sealed: sealed})
		if err != nil {
			return 0, fmt.Errorf("%s %s: encode sealed secret: %w", op, id, err)
		}
		if prevRev == 0 {
			_, err = s.secrets.Create(ctx, key, data)
		} else {
			_, err = s.secrets.Update(ctx, key, data, prevRev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // a concurrent SetHookSecret won: go above its version
		}
		if err != nil {
			return 0, fmt.Errorf("%s %s: store version %d: %w", op, id, version, err)
		}
		return version, nil
	}
	return 0, fmt.Errorf("%s %s: %w (%d attempts)", op, id, ErrConflict, maxAttempts)
}

// readHookSecret returns the sealed hook secret and its KV revision, or
// ErrNoHookSecret.
func (s *Store) readHookSecret(ctx context.Context, id string) (sealedToken, uint64, error) {
	var st sealedToken
	e, err := s.secrets.Get(ctx, hookSecretKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, 0, fmt.Errorf("%w: register the event hook for the connector", ErrNoHookSecret)
	}
	if err != nil {
		return st, 0, fmt.Errorf("read sealed hook secret: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return st, 0, fmt.Errorf("decode sealed hook secret (revision %d): %w", e.Revision(), err)
	}
	return st, e.Revision(), nil
}

// HookSecret opens the connector's event hook secret and returns it with
// its version. ErrNoHookSecret when none is stored; an error wrapping
// secrets.ErrDecrypt when it cannot be opened with the Store's key.
func (s *Store) HookSecret(ctx context.Context, id string) (telemetry.Secret, int64, error) {
	const op = "read event hook secret of connector"
	if err := checkID(op, id); err != nil {
		return telemetry.Secret{}, 0, err
	}
	if s.key.IsZero() {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s: %w: set %s", op, id, ErrNoKey, secrets.EnvKey)
	}
	st, _, err := s.readHookSecret(ctx, id)
	if err != nil {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s: %w", op, id, err)
	}
	plain, err := secrets.Open(s.key, st.Sealed, hookSecretAAD(id, st.Version))
	if err != nil {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s (version %d): %w", op, id, st.Version, err)
	}
	return telemetry.NewSecret(string(plain)), st.Version, nil
}

// HookSecretVersion returns the version of the connector's event hook
// secret and the revision of its bucket entry, without opening it, so that
// a receiver can keep opened secrets in memory and open one again only when
// it changed. The revision is never reused, even when the secret is deleted
// and set again (versions then start over), so the pair identifies one
// stored secret. ErrNoHookSecret when none is stored.
func (s *Store) HookSecretVersion(ctx context.Context, id string) (version int64, revision uint64, err error) {
	const op = "read event hook secret version of connector"
	if err := checkID(op, id); err != nil {
		return 0, 0, err
	}
	st, rev, err := s.readHookSecret(ctx, id)
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: %w", op, id, err)
	}
	return st.Version, rev, nil
}

// DeleteHookSecret removes the connector's event hook secret, so that no
// delivery is accepted for it any more. Deleting a secret that is not
// there is not an error.
func (s *Store) DeleteHookSecret(ctx context.Context, id string) error {
	const op = "delete event hook secret of connector"
	if err := checkID(op, id); err != nil {
		return err
	}
	if err := s.secrets.Purge(ctx, hookSecretKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	return nil
}
