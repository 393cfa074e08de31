package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/nats-io/nats.go/jetstream"
)

// sealedToken is the value of a connector's key in BucketSecrets.
type sealedToken struct {
	// Version is the secret's version: the record's secret_version once the
	// record caught up, and part of the sealed value's associated data.
	Version int64 `json:"version"`
	// KeyID names the key it is sealed with, for operators (the sealed
	// value names it too).
	KeyID string `json:"key_id"`
	// Sealed is secrets.Seal of the token (base64 in JSON).
	Sealed []byte `json:"sealed"`
}

// tokenAAD binds a sealed token to its connector and version.
func tokenAAD(id string, version int64) []byte {
	return []byte("accessbus/connector-token\x00" + id + "\x00" + strconv.FormatInt(version, 10))
}

// SetToken seals token and stores it as the connector's new secret version,
// then marks the record token_set with that secret_version. It returns the
// version. The token never enters the record, an event or an error.
func (s *Store) SetToken(ctx context.Context, id string, token telemetry.Secret) (int64, error) {
	const op = "set token of connector"
	if err := checkID(op, id); err != nil {
		return 0, err
	}
	if s.key.IsZero() {
		return 0, fmt.Errorf("%s %s: %w: set %s", op, id, ErrNoKey, secrets.EnvKey)
	}
	if !token.IsSet() {
		return 0, fmt.Errorf("%s %s: %w: the token is empty", op, id, ErrInvalid)
	}
	if strings.TrimSpace(token.Reveal()) != token.Reveal() || strings.ContainsAny(token.Reveal(), " \t\r\n") {
		return 0, fmt.Errorf("%s %s: %w: the token has spaces; paste it without them (and without the SSWS prefix)", op, id, ErrInvalid)
	}
	rec, err := s.Get(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	version, err := s.storeSealed(ctx, id, rec.GetSecretVersion(), token)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", op, id, err)
	}
	_, _, err = s.update(ctx, id, func(c *eventsv1.Connector) error {
		// A concurrent SetToken may already have recorded a later version.
		if c.GetSecretVersion() < version {
			c.TokenSet = true
			c.SecretVersion = version
			refreshSetupReason(c)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s %s: record version %d: %w", op, id, version, err)
	}
	return version, nil
}

// reasonTokenUnchecked is the status_reason of a connector whose token no
// sync has tried yet.
const reasonTokenUnchecked = "the API token has not been checked yet: it is checked by the next sync"

// storeSealed writes a new version of the sealed token, above both the
// record's version and the stored one, and returns it.
func (s *Store) storeSealed(ctx context.Context, id string, recordVersion int64, token telemetry.Secret) (int64, error) {
	for range maxAttempts {
		var prevRev uint64
		version := recordVersion + 1
		e, err := s.secrets.Get(ctx, id)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("read sealed token: %w", err)
		default:
			prevRev = e.Revision()
			var prev sealedToken
			if err := json.Unmarshal(e.Value(), &prev); err != nil {
				return 0, fmt.Errorf("decode sealed token (revision %d): %w", prevRev, err)
			}
			version = max(version, prev.Version+1)
		}
		sealed, err := secrets.Seal(s.key, []byte(token.Reveal()), tokenAAD(id, version))
		if err != nil {
			return 0, err
		}
		data, err := json.Marshal(sealedToken{Version: version, KeyID: s.key.ID(), Sealed: sealed})
		if err != nil {
			return 0, fmt.Errorf("encode sealed token: %w", err)
		}
		if prevRev == 0 {
			_, err = s.secrets.Create(ctx, id, data)
		} else {
			_, err = s.secrets.Update(ctx, id, data, prevRev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another SetToken won: go above its version
		}
		if err != nil {
			return 0, fmt.Errorf("store sealed token version %d: %w", version, err)
		}
		return version, nil
	}
	return 0, fmt.Errorf("store sealed token: %w (%d attempts)", ErrConflict, maxAttempts)
}

// Token opens the connector's API token and returns it with its version.
// ErrNoToken when none is stored; an error wrapping secrets.ErrDecrypt
// (and secrets.ErrWrongKey) when it cannot be opened with the Store's key.
func (s *Store) Token(ctx context.Context, id string) (telemetry.Secret, int64, error) {
	const op = "read token of connector"
	if err := checkID(op, id); err != nil {
		return telemetry.Secret{}, 0, err
	}
	if s.key.IsZero() {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s: %w: set %s", op, id, ErrNoKey, secrets.EnvKey)
	}
	e, err := s.secrets.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s: %w: set one for the connector", op, id, ErrNoToken)
	}
	if err != nil {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s: %w", op, id, err)
	}
	var st sealedToken
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s: decode sealed token: %w", op, id, err)
	}
	plain, err := secrets.Open(s.key, st.Sealed, tokenAAD(id, st.Version))
	if err != nil {
		return telemetry.Secret{}, 0, fmt.Errorf("%s %s (version %d): %w", op, id, st.Version, err)
	}
	return telemetry.NewSecret(string(plain)), st.Version, nil
}
