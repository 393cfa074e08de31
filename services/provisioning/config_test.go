package provisioning_test

import (
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/services/provisioning"
)

// TestConfigValidate: a good configuration passes, and each bad setting is
// refused with the variable's name and what to set instead.
func TestConfigValidate(t *testing.T) {
	key, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good := func() provisioning.Config {
		return provisioning.Config{SecretsKey: key, Workers: 16, WarnBefore: 24 * time.Hour, RateLimitShare: 0.5,
			OktaTimeScale: 1, ExpiryEvery: time.Second, CheckTTL: 2 * time.Second}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	off := good()
	off.CheckTTL = -time.Second
	if err := off.Validate(); err != nil {
		t.Fatalf("check cache off: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*provisioning.Config)
		want   string
	}{
		"no key":          {func(c *provisioning.Config) { c.SecretsKey = secrets.Key{} }, "ACCESSBUS_SECRETS_KEY"},
		"no workers":      {func(c *provisioning.Config) { c.Workers = 0 }, "ACCESSBUS_PROVISIONING_WORKERS"},
		"no warning":      {func(c *provisioning.Config) { c.WarnBefore = 0 }, "ACCESSBUS_PROVISIONING_WARN_BEFORE"},
		"share above 1":   {func(c *provisioning.Config) { c.RateLimitShare = 1.5 }, "ACCESSBUS_RATE_LIMIT_SHARE"},
		"time scale":      {func(c *provisioning.Config) { c.OktaTimeScale = 0.5 }, "ACCESSBUS_OKTA_TIME_SCALE"},
		"expiry too fast": {func(c *provisioning.Config) { c.ExpiryEvery = time.Millisecond }, "ACCESSBUS_PROVISIONING_EXPIRY_EVERY"},
		"check TTL long":  {func(c *provisioning.Config) { c.CheckTTL = 5 * time.Minute }, "ACCESSBUS_PROVISIONING_CHECK_TTL 5m0s: at most 1m"},
	} {
		c := good()
		tc.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to name %q", name, err, tc.want)
		}
	}
}
