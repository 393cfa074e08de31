// Package authtest gives tests an API key for an identity holding given
// platform roles, from a real auth.Store.
package authtest

import (
	"context"
	"testing"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// Key grants identity roles in store and returns a new API key bound to
// it, named name; it fails tb on any error.
func Key(tb testing.TB, store *auth.Store, identity, name string, roles ...auth.Role) telemetry.Secret {
	tb.Helper()
	ctx := context.Background()
	for _, r := range roles {
		if err := store.Grant(ctx, identity, r); err != nil {
			tb.Fatal(err)
		}
	}
	key, err := store.NewKey(ctx, identity, name)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}
