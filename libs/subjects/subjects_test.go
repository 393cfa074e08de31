package subjects_test

import (
	"errors"
	"strings"
	"testing"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

func TestValidateConnectorID(t *testing.T) {
	valid := []string{"c1", "acme", "acme-prod_2", "0", strings.Repeat("a", 64)}
	for _, id := range valid {
		if err := subjects.ValidateConnectorID(id); err != nil {
			t.Errorf("ValidateConnectorID(%q) = %v, want nil", id, err)
		}
	}
	invalid := []struct {
		id, hint string
	}{
		{"", "empty"},
		{strings.Repeat("a", 65), "at most 64"},
		{"Acme", `lower case ("acme")`},
		{"acme.prod", `'.'`},
		{"acme*", `'*'`},
		{">", `'>'`},
		{"acme prod", `' '`},
		{"acmé", `'é'`},
		{"a/b", `'/'`},
	}
	for _, c := range invalid {
		err := subjects.ValidateConnectorID(c.id)
		if !errors.Is(err, subjects.ErrInvalidConnectorID) {
			t.Errorf("ValidateConnectorID(%q) = %v, want ErrInvalidConnectorID", c.id, err)
			continue
		}
		if !strings.Contains(err.Error(), c.hint) {
			t.Errorf("ValidateConnectorID(%q) = %q, want it to mention %s", c.id, err, c.hint)
		}
	}
}

func TestKindTokens(t *testing.T) {
	want := map[eventsv1.ResourceKind]string{
		eventsv1.ResourceKind_RESOURCE_KIND_USER:          "user",
		eventsv1.ResourceKind_RESOURCE_KIND_GROUP:         "group",
		eventsv1.ResourceKind_RESOURCE_KIND_APP:           "app",
		eventsv1.ResourceKind_RESOURCE_KIND_STANDARD_ROLE: "standard_role",
		eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE:   "custom_role",
		eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET:  "resource_set",
	}
	// Every value of the enum but UNSPECIFIED must have a token, so that a kind
	// added to the proto cannot be forgotten here.
	values := eventsv1.ResourceKind(0).Descriptor().Values()
	for i := range values.Len() {
		kind := eventsv1.ResourceKind(values.Get(i).Number())
		if kind == eventsv1.ResourceKind_RESOURCE_KIND_UNSPECIFIED {
			continue
		}
		tok, err := subjects.KindToken(kind)
		if err != nil {
			t.Errorf("KindToken(%v): %v", kind, err)
			continue
		}
		if tok != want[kind] {
			t.Errorf("KindToken(%v) = %q, want %q", kind, tok, want[kind])
		}
		// The token is the enum value's name without its prefix, lower-cased.
		if name := strings.ToLower(strings.TrimPrefix(kind.String(), "RESOURCE_KIND_")); tok != name {
			t.Errorf("KindToken(%v) = %q, want %q", kind, tok, name)
		}
		back, err := subjects.KindFromToken(tok)
		if err != nil || back != kind {
			t.Errorf("KindFromToken(%q) = %v, %v; want %v", tok, back, err, kind)
		}
	}
	if _, err := subjects.KindToken(eventsv1.ResourceKind_RESOURCE_KIND_UNSPECIFIED); !errors.Is(err, subjects.ErrUnknownResourceKind) {
		t.Errorf("KindToken(UNSPECIFIED) = %v, want ErrUnknownResourceKind", err)
	}
	if _, err := subjects.KindToken(eventsv1.ResourceKind(99)); !errors.Is(err, subjects.ErrUnknownResourceKind) {
		t.Errorf("KindToken(99) = %v, want ErrUnknownResourceKind", err)
	}
	for _, tok := range []string{"", "User", "role", "*"} {
		if _, err := subjects.KindFromToken(tok); !errors.Is(err, subjects.ErrUnknownResourceKind) {
			t.Errorf("KindFromToken(%q) = %v, want ErrUnknownResourceKind", tok, err)
		}
	}
}

// built is every subject of the bus for connector c1, with what Parse must
// return for it and its payload type.
func built(t *testing.T) []struct {
	subject string
	want    subjects.Subject
	payload string
} {
	t.Helper()
	const c = "c1"
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		return s
	}
	user := eventsv1.ResourceKind_RESOURCE_KIND_USER
	rset := eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET
	const p = "accessbus.events.v1."
	return []struct {
		subject string
		want    subjects.Subject
		payload string
	}{
		{must(subjects.ResourceUpserted(c, user)), subjects.Subject{Domain: "access", Connector: c, Entity: "resource", Kind: user, Verb: "upserted"}, p + "ResourceUpserted"},
		{must(subjects.ResourceDeleted(c, rset)), subjects.Subject{Domain: "access", Connector: c, Entity: "resource", Kind: rset, Verb: "deleted"}, p + "ResourceDeleted"},
		{must(subjects.GrantAdded(c)), subjects.Subject{Domain: "access", Connector: c, Entity: "grant", Verb: "added"}, p + "GrantAdded"},
		{must(subjects.GrantRemoved(c)), subjects.Subject{Domain: "access", Connector: c, Entity: "grant", Verb: "removed"}, p + "GrantRemoved"},
		{must(subjects.SyncRequest(c)), subjects.Subject{Domain: "sync", Connector: c, Entity: "request"}, p + "SyncRequest"},
		{must(subjects.SyncRunStarted(c)), subjects.Subject{Domain: "sync", Connector: c, Entity: "run", Verb: "started"}, p + "SyncRunStarted"},
		{must(subjects.SyncRunCompleted(c)), subjects.Subject{Domain: "sync", Connector: c, Entity: "run", Verb: "completed"}, p + "SyncRunCompleted"},
		{must(subjects.SyncRunFailed(c)), subjects.Subject{Domain: "sync", Connector: c, Entity: "run", Verb: "failed"}, p + "SyncRunFailed"},
		{must(subjects.ProvisioningRequest(c)), subjects.Subject{Domain: "provisioning", Connector: c, Entity: "request"}, p + "ProvisioningRequest"},
		{must(subjects.ProvisioningSucceeded(c)), subjects.Subject{Domain: "provisioning", Connector: c, Entity: "result", Verb: "succeeded"}, p + "ProvisioningResult"},
		{must(subjects.ProvisioningFailed(c)), subjects.Subject{Domain: "provisioning", Connector: c, Entity: "result", Verb: "failed"}, p + "ProvisioningResult"},
		{must(subjects.ProvisioningExpiring(c)), subjects.Subject{Domain: "provisioning", Connector: c, Entity: "expiring"}, p + "ProvisioningExpiring"},
		{must(subjects.OktaHook(c)), subjects.Subject{Domain: "okta", Connector: c, Entity: "hook"}, "application/json"},
		{subjects.CatalogConnectorCreated, subjects.Subject{Domain: "catalog", Entity: "connector", Verb: "created"}, p + "ConnectorCreated"},
		{subjects.CatalogConnectorUpdated, subjects.Subject{Domain: "catalog", Entity: "connector", Verb: "updated"}, p + "ConnectorUpdated"},
		{subjects.CatalogConnectorStatusChanged, subjects.Subject{Domain: "catalog", Entity: "connector", Verb: "status_changed"}, p + "ConnectorStatusChanged"},
		{subjects.CatalogConnectorDeleted, subjects.Subject{Domain: "catalog", Entity: "connector", Verb: "deleted"}, p + "ConnectorDeleted"},
		{subjects.CatalogConnectorOwnersAssigned, subjects.Subject{Domain: "catalog", Entity: "connector", Verb: "owners_assigned"}, p + "ConnectorOwnersAssigned"},
		{subjects.CatalogAppUpserted, subjects.Subject{Domain: "catalog", Entity: "app", Verb: "upserted"}, p + "ApplicationUpserted"},
		{subjects.CatalogAppDeleted, subjects.Subject{Domain: "catalog", Entity: "app", Verb: "deleted"}, p + "ApplicationDeleted"},
		{subjects.CatalogIdentityUpserted, subjects.Subject{Domain: "catalog", Entity: "identity", Verb: "upserted"}, p + "IdentityUpserted"},
		{subjects.CatalogIdentityDeleted, subjects.Subject{Domain: "catalog", Entity: "identity", Verb: "deleted"}, p + "IdentityDeleted"},
		{subjects.NotifyEmailSent, subjects.Subject{Domain: "notify", Entity: "email", Verb: "sent"}, p + "EmailSent"},
		{subjects.NotifyEmailFailed, subjects.Subject{Domain: "notify", Entity: "email", Verb: "failed"}, p + "EmailFailed"},
		{must(subjects.DeadLetter("access.c1.grant.added")), subjects.Subject{Domain: "dlq", Original: "access.c1.grant.added"}, p + "DeadLetter"},
	}
}

func TestBuildersParseRoundTrip(t *testing.T) {
	for _, c := range built(t) {
		got, err := subjects.Parse(c.subject)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.subject, err)
			continue
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.subject, got, c.want)
		}
		if s := got.String(); s != c.subject {
			t.Errorf("Parse(%q).String() = %q", c.subject, s)
		}
		if pt := got.PayloadType(); pt != c.payload {
			t.Errorf("Parse(%q).PayloadType() = %q, want %q", c.subject, pt, c.payload)
		}
		stream, err := subjects.StreamOf(c.subject)
		if err != nil {
			t.Errorf("StreamOf(%q): %v", c.subject, err)
		}
		// Every subject is captured by its stream's filter.
		for _, s := range subjects.Streams() {
			if s.Name == stream && !strings.HasPrefix(c.subject, strings.TrimSuffix(s.Filter, ">")) {
				t.Errorf("subject %q is in stream %s but not under its filter %q", c.subject, stream, s.Filter)
			}
		}
	}
}

func TestSubjectsAreLiteral(t *testing.T) {
	// The examples of ARCHITECTURE.md, spelled out, so that a change of a
	// builder that the round trip would not notice still fails.
	cases := []struct {
		got  func() (string, error)
		want string
	}{
		{func() (string, error) { return subjects.GrantAdded("c1") }, "access.c1.grant.added"},
		{func() (string, error) { return subjects.GrantRemoved("c1") }, "access.c1.grant.removed"},
		{func() (string, error) {
			return subjects.ResourceUpserted("c1", eventsv1.ResourceKind_RESOURCE_KIND_GROUP)
		}, "access.c1.resource.group.upserted"},
		{func() (string, error) {
			return subjects.ResourceDeleted("c1", eventsv1.ResourceKind_RESOURCE_KIND_USER)
		}, "access.c1.resource.user.deleted"},
		{func() (string, error) {
			return subjects.ResourceUpserted("c1", eventsv1.ResourceKind_RESOURCE_KIND_STANDARD_ROLE)
		}, "access.c1.resource.standard_role.upserted"},
		{func() (string, error) { return subjects.SyncRequest("acme-prod") }, "sync.acme-prod.request"},
		{func() (string, error) { return subjects.SyncRunFailed("c1") }, "sync.c1.run.failed"},
		{func() (string, error) { return subjects.ProvisioningSucceeded("c1") }, "provisioning.c1.result.succeeded"},
		{func() (string, error) { return subjects.ProvisioningExpiring("c1") }, "provisioning.c1.expiring"},
		{func() (string, error) { return subjects.OktaHook("c1") }, "okta.c1.hook"},
		{func() (string, error) { return subjects.DeadLetter("sync.c1.request") }, "dlq.sync.c1.request"},
		{func() (string, error) { return subjects.ConnectorAccess("c1") }, "access.c1.>"},
		{func() (string, error) {
			return subjects.AllResourceChanges(eventsv1.ResourceKind_RESOURCE_KIND_APP)
		}, "access.*.resource.app.*"},
	}
	for _, c := range cases {
		got, err := c.got()
		if err != nil || got != c.want {
			t.Errorf("got %q, %v; want %q", got, err, c.want)
		}
	}
}

func TestBuildersRejectBadInput(t *testing.T) {
	builders := map[string]func(string) (string, error){
		"GrantAdded":            subjects.GrantAdded,
		"GrantRemoved":          subjects.GrantRemoved,
		"SyncRequest":           subjects.SyncRequest,
		"SyncRunStarted":        subjects.SyncRunStarted,
		"SyncRunCompleted":      subjects.SyncRunCompleted,
		"SyncRunFailed":         subjects.SyncRunFailed,
		"ProvisioningRequest":   subjects.ProvisioningRequest,
		"ProvisioningSucceeded": subjects.ProvisioningSucceeded,
		"ProvisioningFailed":    subjects.ProvisioningFailed,
		"ProvisioningExpiring":  subjects.ProvisioningExpiring,
		"OktaHook":              subjects.OktaHook,
		"ConnectorAccess":       subjects.ConnectorAccess,
		"ResourceUpserted": func(c string) (string, error) {
			return subjects.ResourceUpserted(c, eventsv1.ResourceKind_RESOURCE_KIND_USER)
		},
		"ResourceDeleted": func(c string) (string, error) {
			return subjects.ResourceDeleted(c, eventsv1.ResourceKind_RESOURCE_KIND_USER)
		},
	}
	for name, build := range builders {
		for _, bad := range []string{"", "*", ">", "a.b", "C1"} {
			s, err := build(bad)
			if !errors.Is(err, subjects.ErrInvalidConnectorID) || s != "" {
				t.Errorf("%s(%q) = %q, %v; want ErrInvalidConnectorID", name, bad, s, err)
			}
		}
	}
	if _, err := subjects.ResourceUpserted("c1", eventsv1.ResourceKind_RESOURCE_KIND_UNSPECIFIED); !errors.Is(err, subjects.ErrUnknownResourceKind) {
		t.Errorf("ResourceUpserted(UNSPECIFIED) = %v, want ErrUnknownResourceKind", err)
	}
	if _, err := subjects.AllResourceChanges(eventsv1.ResourceKind(42)); !errors.Is(err, subjects.ErrUnknownResourceKind) {
		t.Errorf("AllResourceChanges(42) = %v, want ErrUnknownResourceKind", err)
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "access.*.grant.added", "access.>", "a b"} {
		if _, err := subjects.DeadLetter(bad); !errors.Is(err, subjects.ErrInvalidSubject) {
			t.Errorf("DeadLetter(%q) = %v, want ErrInvalidSubject", bad, err)
		}
	}
}

func TestProvisioningResultSubject(t *testing.T) {
	for outcome, want := range map[eventsv1.ProvisioningResult_Outcome]string{
		eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED: "provisioning.c1.result.succeeded",
		eventsv1.ProvisioningResult_OUTCOME_FAILED:    "provisioning.c1.result.failed",
	} {
		got, err := subjects.ProvisioningResult(&eventsv1.ProvisioningResult{ConnectorId: "c1", Outcome: outcome})
		if err != nil || got != want {
			t.Errorf("ProvisioningResult(%v) = %q, %v; want %q", outcome, got, err, want)
		}
	}
	if _, err := subjects.ProvisioningResult(&eventsv1.ProvisioningResult{ConnectorId: "c1"}); err == nil {
		t.Error("ProvisioningResult without an outcome: want an error")
	}
	if _, err := subjects.ProvisioningResult(&eventsv1.ProvisioningResult{
		ConnectorId: "c.1", Outcome: eventsv1.ProvisioningResult_OUTCOME_FAILED,
	}); !errors.Is(err, subjects.ErrInvalidConnectorID) {
		t.Errorf("ProvisioningResult with a bad connector = %v, want ErrInvalidConnectorID", err)
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]error{
		"":                                   subjects.ErrInvalidSubject,
		"access..grant.added":                subjects.ErrInvalidSubject,
		"access.*.grant.added":               subjects.ErrInvalidSubject,
		"access.c1.>":                        subjects.ErrInvalidSubject,
		"access.c1.grant.added ":             subjects.ErrInvalidSubject,
		"access.C1.grant.added":              subjects.ErrInvalidConnectorID,
		"access.c1.resource.role.upserted":   subjects.ErrUnknownResourceKind,
		"access.c1.grant.upserted":           subjects.ErrUnknownSubject,
		"access.c1.grant":                    subjects.ErrUnknownSubject,
		"access.c1.grant.added.x":            subjects.ErrUnknownSubject,
		"access.c1.resource.user":            subjects.ErrUnknownSubject,
		"access.c1.resource":                 subjects.ErrUnknownSubject,
		"access.c1.resource.user.added":      subjects.ErrUnknownSubject,
		"access.c1":                          subjects.ErrUnknownSubject,
		"sync.c1.request.now":                subjects.ErrUnknownSubject,
		"sync.c1.run":                        subjects.ErrUnknownSubject,
		"provisioning.c1.result.done":        subjects.ErrUnknownSubject,
		"okta.c1.hooks":                      subjects.ErrUnknownSubject,
		"catalog.connector":                  subjects.ErrUnknownSubject,
		"catalog.connector.c1.created":       subjects.ErrUnknownSubject,
		"catalog.app.created":                subjects.ErrUnknownSubject,
		"notify.email.bounced":               subjects.ErrUnknownSubject,
		"dlq":                                subjects.ErrUnknownSubject,
		"billing.c1.invoice.sent":            subjects.ErrUnknownSubject,
		"ACCESS.c1.grant.added":              subjects.ErrUnknownSubject,
		"access.c1.resource.user.upserted.x": subjects.ErrUnknownSubject,
	}
	for subject, want := range cases {
		if got, err := subjects.Parse(subject); !errors.Is(err, want) {
			t.Errorf("Parse(%q) = %+v, %v; want %v", subject, got, err, want)
		}
	}
}

func TestParseDeadLetterOfUnknownSubject(t *testing.T) {
	// A dead letter of a subject this version does not know still parses, so
	// that the DLQ can be read across versions.
	got, err := subjects.Parse("dlq.billing.c1.invoice.sent")
	if err != nil {
		t.Fatal(err)
	}
	if got.Domain != "dlq" || got.Original != "billing.c1.invoice.sent" {
		t.Errorf("Parse = %+v", got)
	}
	if _, err := subjects.Parse(got.Original); !errors.Is(err, subjects.ErrUnknownSubject) {
		t.Errorf("Parse(original) = %v, want ErrUnknownSubject", err)
	}
}

func TestStreams(t *testing.T) {
	want := map[string]string{
		"ACCESS": "access.>", "SYNC": "sync.>", "PROVISIONING": "provisioning.>",
		"CATALOG": "catalog.>", "OKTA_HOOKS": "okta.>", "NOTIFY": "notify.>", "DLQ": "dlq.>",
	}
	got := subjects.Streams()
	if len(got) != len(want) {
		t.Fatalf("Streams() has %d streams, want %d", len(got), len(want))
	}
	for _, s := range got {
		if want[s.Name] != s.Filter || s.Filter != s.Domain+".>" {
			t.Errorf("stream %+v, want filter %q", s, want[s.Name])
		}
	}
	got[0].Name = "changed"
	if subjects.Streams()[0].Name != subjects.StreamAccess {
		t.Error("Streams() shares its slice between calls")
	}
	if _, err := subjects.StreamOf("billing.x"); !errors.Is(err, subjects.ErrUnknownSubject) {
		t.Errorf("StreamOf(billing.x) = %v, want ErrUnknownSubject", err)
	}
	if _, err := subjects.StreamOf("access..x"); !errors.Is(err, subjects.ErrInvalidSubject) {
		t.Errorf("StreamOf(access..x) = %v, want ErrInvalidSubject", err)
	}
}

func TestMsgID(t *testing.T) {
	a := subjects.MsgID("c1", "grant", "group_membership/00g1/00u1", "added", "42")
	if b := subjects.MsgID("c1", "grant", "group_membership/00g1/00u1", "added", "42"); a != b {
		t.Errorf("MsgID is not deterministic: %q then %q", a, b)
	}
	if len(a) != subjects.MsgIDLen || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("MsgID = %q, want %d lowercase hex characters", a, subjects.MsgIDLen)
	}
	// Fixed vector: the id is part of the bus contract, and changing it would
	// let the stream accept republished messages as new within the dedupe window.
	// The vector is the first 16 bytes of sha256("\x01a\x01b"), in hex.
	if got, want := subjects.MsgID("a", "b"), "fa4a350f5906021e27b2caf19409319e"; got != want {
		t.Errorf(`MsgID("a", "b") = %q, want %q`, got, want)
	}
	distinct := [][]string{
		{},
		{""},
		{"", ""},
		{"a"},
		{"a", ""},
		{"", "a"},
		{"a.b", "c"},
		{"a", "b.c"},
		{"ab", "c"},
		{"a", "bc"},
		{"abc"},
		{"c1", "grant", "k", "added", "1"},
		{"c1", "grant", "k", "removed", "1"},
		{"c1", "grant", "k", "added", "2"},
	}
	seen := map[string][]string{}
	for _, parts := range distinct {
		id := subjects.MsgID(parts...)
		if prev, ok := seen[id]; ok {
			t.Errorf("MsgID(%q) = MsgID(%q) = %q", parts, prev, id)
		}
		seen[id] = parts
	}
}
