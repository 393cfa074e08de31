package connectors_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// TestConnectorWithoutDomain: a connector is added before an owner sets its
// Okta domain and token. The record has no domain (never a stand-in), its
// status reason says what is missing and how to set it, and it follows the
// settings as they arrive. Whatever needs the org's URL (the sync worker
// and the provisioning client both start with OrgURL) is told clearly that
// the domain is not set and how to set it (the sync's own answer is in
// cmd/accessbus TestSyncOfAConnectorWithoutDomain).
func TestConnectorWithoutDomain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, err := e.store.Create(ctx, &eventsv1.Connector{Id: "acme", CreatedBy: "u1"})
	if err != nil {
		t.Fatalf("create without a domain: %v", err)
	}
	if c.GetOktaDomain() != "" || c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED {
		t.Fatalf("created %v", c)
	}
	wantReason := func(c *eventsv1.Connector, says ...string) {
		t.Helper()
		for _, s := range says {
			if !strings.Contains(c.GetStatusReason(), s) {
				t.Fatalf("status reason %q does not say %q", c.GetStatusReason(), s)
			}
		}
	}
	wantReason(c, "the Okta domain and API token are not set", "accessbus connectors set-settings acme --domain acme.okta.com --token-stdin")
	if got, _ := e.store.Get(ctx, "acme"); got.GetOktaDomain() != "" || !proto.Equal(got, c) {
		t.Fatalf("stored %v", got)
	}

	// The sync worker and the provisioning client call OrgURL first.
	_, err = connectors.OrgURL(c.GetOktaDomain())
	if !errors.Is(err, connectors.ErrNoDomain) || !errors.Is(err, connectors.ErrInvalidDomain) {
		t.Fatalf("OrgURL of no domain: %v, want ErrNoDomain and ErrInvalidDomain", err)
	}
	for _, says := range []string{"the Okta domain is not set", "accessbus connectors set-settings", "--domain"} {
		if !strings.Contains(err.Error(), says) {
			t.Fatalf("OrgURL error %q does not say %q", err, says)
		}
	}

	// A token before the domain (the catalog asks for both; the store
	// alone allows it): the reason now names the domain alone.
	if _, err := e.store.SetToken(ctx, "acme", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	c, _ = e.store.Get(ctx, "acme")
	if !c.GetTokenSet() || c.GetOktaDomain() != "" || c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED {
		t.Fatalf("after the token %v", c)
	}
	wantReason(c, "the Okta domain is not set", "set-settings acme --domain acme.okta.com")
	if strings.Contains(c.GetStatusReason(), "token") {
		t.Fatalf("reason %q still asks for the token", c.GetStatusReason())
	}
	// The domain: normalized, and the connector waits for its first sync.
	c, err = e.store.Update(ctx, "acme", func(c *eventsv1.Connector) error { c.OktaDomain = "https://ACME.okta.com/"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if c.GetOktaDomain() != "acme.okta.com" {
		t.Fatalf("domain %q", c.GetOktaDomain())
	}
	wantReason(c, "has not been checked yet")
	if u, err := connectors.OrgURL(c.GetOktaDomain()); err != nil || u != "https://acme.okta.com" {
		t.Fatalf("OrgURL %q %v", u, err)
	}

	// The other order: domain first, then token.
	if _, err := e.store.Create(ctx, &eventsv1.Connector{Id: "beta"}); err != nil {
		t.Fatal(err)
	}
	c, err = e.store.Update(ctx, "beta", func(c *eventsv1.Connector) error { c.OktaDomain = "beta.okta.com"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	wantReason(c, "no API token is set", "set-settings beta --token-stdin")
	// A reason someone else gave (a refused token) is left alone by changes
	// of the settings.
	c, err = e.store.Update(ctx, "beta", func(c *eventsv1.Connector) error {
		c.Status, c.StatusReason = eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR, "Okta rejected the API token"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err = e.store.Update(ctx, "beta", func(c *eventsv1.Connector) error { c.OktaDomain = "beta2.okta.com"; return nil })
	if err != nil || c.GetStatusReason() != "Okta rejected the API token" {
		t.Fatalf("a refusal's reason was replaced: %v %v", c, err)
	}
	// A domain once set cannot be cleared.
	if _, err := e.store.Update(ctx, "beta", func(c *eventsv1.Connector) error { c.OktaDomain = ""; return nil }); !errors.Is(err, connectors.ErrNoDomain) {
		t.Fatalf("clearing the domain: %v", err)
	}
}

// TestLegacyNoDomainPlaceholder: records stored while the catalog had to
// put a stand-in domain on a connector without one read as having none.
func TestLegacyNoDomainPlaceholder(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	kv, err := e.js.KeyValue(ctx, connectors.BucketConnectors)
	if err != nil {
		t.Fatal(err)
	}
	old, err := proto.Marshal(&eventsv1.Connector{Id: "old", OktaDomain: "okta-domain-not-set.invalid",
		Status: eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED, StatusReason: "no API token is set: set one for the connector"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "old", old); err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Get(ctx, "old")
	if err != nil || c.GetOktaDomain() != "" {
		t.Fatalf("legacy record: %v %v", c, err)
	}
	list, err := e.store.List(ctx)
	if err != nil || len(list) != 1 || list[0].GetOktaDomain() != "" {
		t.Fatalf("list: %v %v", list, err)
	}
	// Its first change stores it without the stand-in, with today's reason.
	c, err = e.store.Update(ctx, "old", func(c *eventsv1.Connector) error { c.CreatedBy = "u1"; return nil })
	if err != nil || c.GetOktaDomain() != "" || !strings.Contains(c.GetStatusReason(), "the Okta domain and API token are not set") {
		t.Fatalf("updated legacy record: %v %v", c, err)
	}
	raw, err := kv.Get(ctx, "old")
	if err != nil || strings.Contains(string(raw.Value()), "okta-domain-not-set") {
		t.Fatalf("the stand-in is still stored: %v", err)
	}
}
