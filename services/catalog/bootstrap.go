package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// DefaultAdminEmail is the first Super Administrator's email when
// ACCESSBUS_ADMIN_EMAIL is not set.
const DefaultAdminEmail = "admin@accessbus.local"

// BootstrapAdmin is the first Super Administrator, created when the
// catalog starts on an installation where nobody holds a role yet.
type BootstrapAdmin struct {
	// Email is the administrator's email (Config.AdminEmail).
	Email string
	// IdentityID is their platform identity id (IdentityID(Email)).
	IdentityID string
	// Key is their new API key: the only time it exists outside its hash.
	Key telemetry.Secret
}

// bootstrap creates the first Super Administrator when no identity holds
// a role: their identity (in the Discovery bucket, so they can be made an
// owner), an API key handed to cfg.OnBootstrapKey or written to
// cfg.AdminKeyFile, and the super_admin role, granted last so that a key
// that could not be handed over never becomes one nobody holds. With
// neither a hook nor a file, it does nothing and says so: a key nobody
// receives would lock the installation.
func bootstrap(ctx context.Context, cfg Config, store *auth.Store, disc *Discovery, log *slog.Logger) error {
	has, err := store.HasAnyRoles(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: read roles: %w", err)
	}
	if has {
		return nil
	}
	if cfg.OnBootstrapKey == nil && cfg.AdminKeyFile == "" {
		log.Warn("nobody holds a platform role, and there is nowhere to hand the first Super Administrator's API key: set ACCESSBUS_ADMIN_API_KEY_FILE and restart")
		return nil
	}
	email := cfg.AdminEmail
	if email == "" {
		email = DefaultAdminEmail
	}
	email, err = parseEmail(email)
	if err != nil {
		return fmt.Errorf("bootstrap: ACCESSBUS_ADMIN_EMAIL: %w", err)
	}
	idn, err := disc.EnsureIdentity(ctx, email, "Administrator")
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	key, err := store.NewKey(ctx, idn.GetId(), "bootstrap")
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	admin := BootstrapAdmin{Email: email, IdentityID: idn.GetId(), Key: key}
	if cfg.OnBootstrapKey != nil {
		err = cfg.OnBootstrapKey(ctx, admin)
	} else {
		err = writeKeyFile(cfg.AdminKeyFile, key)
	}
	if err != nil {
		return fmt.Errorf("bootstrap: hand over the first Super Administrator's API key: %w", err)
	}
	if err := store.Grant(ctx, idn.GetId(), auth.SuperAdmin); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	log.Info("first Super Administrator created", "email", email, "identity", idn.GetId())
	return nil
}

// writeKeyFile writes key to path, readable by its owner only.
func writeKeyFile(path string, key telemetry.Secret) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(key.Reveal()+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
