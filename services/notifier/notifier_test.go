package notifier_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/services/notifier"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

var createdAt = time.Now()

func connectorCreated(id, createdBy string, owners ...*eventsv1.ConnectorOwner) *eventsv1.ConnectorCreated {
	return &eventsv1.ConnectorCreated{Connector: &eventsv1.Connector{
		Id: id, OktaDomain: id + ".okta.com", Owners: owners, CreatedBy: createdBy, Revision: 1, CreatedAt: timestamppb.New(createdAt),
		Status: eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED,
	}}
}

func TestSetupEmailGoesToEachOwnerButNotTheOneWhoMadeTheChange(t *testing.T) {
	e := newEnv(t)
	e.start(t)
	// carol has no email on the event: the directory knows it.
	e.identity(t, "i-carol", "carol@example.test")
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerDirectory)

	// ana creates the connector with herself and bob as owners; the catalog
	// announces the owners in two events, and bob is asked once.
	created := connectorCreated("c1", "i-ana", owner("i-ana", "ana@example.test"), owner("i-bob", "bob@example.test"))
	e.publish(t, subjects.CatalogConnectorCreated, "created-c1", created)
	e.publish(t, subjects.CatalogConnectorOwnersAssigned, "assigned-c1-1", &eventsv1.ConnectorOwnersAssigned{
		Connector: created.GetConnector(), NewOwners: created.GetConnector().GetOwners(), AssignedBy: "i-ana"})
	e.mails(t, 1)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	// bob assigns carol and himself while the connector is still not connected.
	assigned := &eventsv1.ConnectorOwnersAssigned{
		Connector:  connectorCreated("c1", "i-ana").GetConnector(),
		NewOwners:  []*eventsv1.ConnectorOwner{owner("i-carol", ""), owner("i-bob", "bob@example.test")},
		AssignedBy: "i-bob",
	}
	e.publish(t, subjects.CatalogConnectorOwnersAssigned, "assigned-c1-2", assigned)
	e.mails(t, 2)
	// Owners assigned to a connector that is connected have nothing to set up.
	connected := &eventsv1.ConnectorOwnersAssigned{
		Connector: &eventsv1.Connector{Id: "c2", Status: eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED},
		NewOwners: []*eventsv1.ConnectorOwner{owner("i-dave", "dave@example.test")}, AssignedBy: "i-ana",
	}
	e.publish(t, subjects.CatalogConnectorOwnersAssigned, "assigned-c2", connected)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)

	if got := e.recipients(t); !slices.Equal(got, []string{"bob@example.test", "carol@example.test"}) {
		t.Fatalf("recipients %v", got)
	}
	for _, to := range []string{"bob@example.test", "carol@example.test"} {
		m := e.mailsTo(t, to)[0]
		contains(t, "subject", m.Subject, "Your help is needed", "c1")
		contains(t, "text body", m.Text, "Your help is needed", "Set up connector: https://accessbus.example.test/connectors/c1/setup", "you own the connector")
		contains(t, "HTML body", m.HTML, `href="https://accessbus.example.test/connectors/c1/setup"`, ">Set up connector</a>", "c1.okta.com")
		contains(t, "From", m.Header.Get("From"), "accessbus@example.test")
	}
	if !strings.Contains(e.logs.String(), "no setup email to the owner who made the change") {
		t.Error("skipping the actor was not logged")
	}
	sent, failed := e.events(t)
	if len(sent) != 2 || len(failed) != 0 {
		t.Fatalf("events: sent %v failed %v", sent, failed)
	}
	for _, s := range sent {
		if s.GetTemplate() != "connector_setup" || s.GetConnectorId() != "c1" || len(s.GetRecipients()) != 1 ||
			!strings.HasSuffix(s.GetEventKey(), "/connector_setup/"+s.GetRecipients()[0]) || s.GetMessageId() == "" || s.GetSentAt() == nil {
			t.Errorf("sent event %v", s)
		}
	}
}

func syncFailed(c, run string, reason eventsv1.SyncFailureReason) *eventsv1.SyncRunFailed {
	return &eventsv1.SyncRunFailed{ConnectorId: c, RunId: run, Reason: reason, FailedAt: timestamppb.Now(),
		Message: "Okta rejected the API token (E0000011): create a new token and update the connector", OktaErrorCode: "E0000011"}
}

func TestSyncFailingRule(t *testing.T) {
	e := newEnv(t)
	e.createConnector(t, "c1", owner("i-ana", "ana@example.test"), owner("i-bob", "bob@example.test"))
	e.start(t)
	failedSubj, _ := subjects.SyncRunFailed("c1")
	completedSubj, _ := subjects.SyncRunCompleted("c1")
	fail := func(run string, reason eventsv1.SyncFailureReason) {
		t.Helper()
		e.publish(t, failedSubj, subjects.MsgID("sync", "c1", "run", run, "failed"), syncFailed("c1", run, reason))
		e.drained(t, subjects.StreamSync, notifier.ConsumerSync)
	}
	count := func(want int) {
		t.Helper()
		if got := len(e.recipients(t)); got != want {
			t.Fatalf("%d emails, want %d", got, want)
		}
	}
	invalid := eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN
	fail("r1", invalid)
	fail("r2", invalid)
	// A cancelled run (shutdown) neither counts nor resets.
	fail("r-cancel", eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_CANCELLED)
	count(0)
	fail("r3", invalid)
	e.mails(t, 2)
	fail("r4", invalid)
	fail("r5", invalid)
	count(2) // one email per owner at 3, none at 4 and 5
	e.publish(t, completedSubj, subjects.MsgID("sync", "c1", "run", "r6", "completed"), &eventsv1.SyncRunCompleted{ConnectorId: "c1", RunId: "r6"})
	fail("r7", invalid)
	fail("r8", invalid)
	count(2)
	fail("r9", invalid)
	e.mails(t, 4)
	fail("r10", invalid)
	count(4)

	for _, to := range []string{"ana@example.test", "bob@example.test"} {
		ms := e.mailsTo(t, to)
		if len(ms) != 2 {
			t.Fatalf("%s got %d emails", to, len(ms))
		}
		m := ms[0]
		contains(t, "subject", m.Subject, "c1", "last 3 syncs failed")
		contains(t, "text body", m.Text, "invalid token", "E0000011", "create a new token and update the connector", "https://accessbus.example.test/connectors/c1")
		contains(t, "HTML body", m.HTML, "invalid token", "E0000011", "create a new token and update the connector")
	}
}

func TestProvisioningFailedGoesToRequesterAndOwners(t *testing.T) {
	e := newEnv(t)
	e.createConnector(t, "c1", owner("i-own", "own@example.test"), owner("i-both", "both@example.test"))
	e.start(t)
	e.identity(t, "i-req", "req@example.test")
	e.identity(t, "i-both", "both@example.test")
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerDirectory)
	subj, _ := subjects.ProvisioningFailed("c1")
	result := func(id, requestedBy string) *eventsv1.ProvisioningResult {
		return &eventsv1.ProvisioningResult{
			RequestId: id, ConnectorId: "c1", Outcome: eventsv1.ProvisioningResult_OUTCOME_FAILED,
			FailureReason: eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_WRITABLE,
			Message:       "group 00g1 is an APP_GROUP: change it in its source directory",
			Action:        eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT, RequestedBy: requestedBy,
			Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
				GroupMembership: &eventsv1.GroupMembershipTarget{UserId: "00u1", GroupId: "00g1"}}},
		}
	}
	e.publish(t, subj, subjects.MsgID("provisioning", "c1", "result", "p1"), result("p1", "i-req"))
	e.mails(t, 3)
	e.drained(t, subjects.StreamProvisioning, notifier.ConsumerProvisioning)
	if got := e.recipients(t); !slices.Equal(got, []string{"both@example.test", "own@example.test", "req@example.test"}) {
		t.Fatalf("recipients %v", got)
	}
	m := e.mailsTo(t, "req@example.test")[0]
	contains(t, "subject", m.Subject, "Access request failed", "c1")
	contains(t, "text", m.Text, "p1", "membership of Okta user 00u1 in group 00g1", "not writable", "APP_GROUP", "you asked for this access", "requested by req@example.test")
	contains(t, "HTML", m.HTML, "p1", "membership of Okta user 00u1 in group 00g1", "not writable")
	contains(t, "owner's text", e.mailsTo(t, "own@example.test")[0].Text, "you own the connector")

	// The requester is also an owner: one email, both reasons.
	e.publish(t, subj, subjects.MsgID("provisioning", "c1", "result", "p2"), result("p2", "i-both"))
	e.mails(t, 5)
	ms := e.mailsTo(t, "both@example.test")
	contains(t, "text", ms[len(ms)-1].Text, "you asked for this access and you own the connector")
	// A system requester has no mailbox: the owners only, and a log line says so.
	e.publish(t, subj, subjects.MsgID("provisioning", "c1", "result", "p3"), result("p3", "provisioning:expiry"))
	e.mails(t, 7)
	e.drained(t, subjects.StreamProvisioning, notifier.ConsumerProvisioning)
	if n := len(e.recipients(t)); n != 7 {
		t.Fatalf("%d emails", n)
	}
	contains(t, "logs", e.logs.String(), "requested_by is not a known identity", "provisioning:expiry")
}

func TestGrantExpiringWarnsGranteeAndOwners(t *testing.T) {
	e := newEnv(t)
	e.createConnector(t, "c1", owner("i-own", "own@example.test"))
	e.start(t)
	e.identity(t, "i-gra", "gra@example.test", "00u7")
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerDirectory)
	subj, _ := subjects.ProvisioningExpiring("c1")
	expires := time.Now().Add(24 * time.Hour)
	expiring := func(id string, grantee *eventsv1.Principal, at time.Time) *eventsv1.ProvisioningExpiring {
		return &eventsv1.ProvisioningExpiring{RequestId: id, ConnectorId: "c1", ExpiresAt: timestamppb.New(at), Grantee: grantee, RequestedBy: "i-req",
			Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{
				AppAssignment: &eventsv1.AppAssignmentTarget{AppId: "0oa1", Assignee: &eventsv1.AppAssignmentTarget_UserId{UserId: grantee.GetId()}}}}}
	}
	user := &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: "00u7"}
	e.publish(t, subj, "exp-1", expiring("g1", user, expires))
	e.mails(t, 2)
	if got := e.recipients(t); !slices.Equal(got, []string{"gra@example.test", "own@example.test"}) {
		t.Fatalf("recipients %v", got)
	}
	m := e.mailsTo(t, "gra@example.test")[0]
	contains(t, "subject", m.Subject, "Access expires soon", "c1")
	contains(t, "text", m.Text, "assignment of app 0oa1 to Okta user 00u7", "g1", expires.UTC().Format("Mon 2 Jan 2006 15:04 MST"), "you hold this access", "Held by: gra@example.test")
	contains(t, "HTML", m.HTML, "assignment of app 0oa1 to Okta user 00u7", expires.UTC().Format("Mon 2 Jan 2006 15:04 MST"))

	// A group grantee: the owners only. An already expired grant: nobody.
	group := &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: "00g5"}
	e.publish(t, subj, "exp-2", expiring("g2", group, expires))
	e.publish(t, subj, "exp-3", expiring("g3", user, time.Now().Add(-time.Minute)))
	e.mails(t, 3)
	e.drained(t, subjects.StreamProvisioning, notifier.ConsumerProvisioning)
	if got := e.recipients(t); !slices.Equal(got, []string{"gra@example.test", "own@example.test", "own@example.test"}) {
		t.Fatalf("recipients %v", got)
	}
	contains(t, "logs", e.logs.String(), "the grantee is a group", "the access has expired already")
}

func TestRedeliveryRestartAndReplicasSendOnce(t *testing.T) {
	e := newEnv(t)
	e.shortDedupe(t, subjects.CatalogConnectorCreated)
	stop := e.start(t)
	e.publish(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "i-ana", owner("i-bob", "bob@example.test")))
	e.mails(t, 1)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	stop()

	// Restarted, as two replicas, and every event delivered again from the
	// start of the stream.
	if err := e.js.DeleteConsumer(context.Background(), subjects.StreamCatalog, notifier.ConsumerConnectors); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.start(t)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	// A republish after the dedupe window is a new message with the same
	// Nats-Msg-Id: the same event, no new email.
	e.publishNoDedupe(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "i-ana", owner("i-bob", "bob@example.test")))
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	if n := len(e.recipients(t)); n != 1 {
		t.Fatalf("%d emails, want 1", n)
	}
	sent, _ := e.events(t)
	if len(sent) != 1 {
		t.Fatalf("%d sent events", len(sent))
	}
}

func TestSMTP4xxIsRetriedThenSucceeds(t *testing.T) {
	e := newEnv(t)
	var busy int
	e.setReject(func(to string) *mailcapture.Reply {
		if to == "bob@example.test" && busy < 2 {
			busy++
			return &mailcapture.Reply{Code: 451, Message: "greylisted, try again later"}
		}
		return nil
	})
	e.start(t)
	e.publish(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "", owner("i-bob", "bob@example.test")))
	e.mails(t, 1)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	if n := e.rcptCount("bob@example.test"); n != 3 {
		t.Fatalf("%d RCPT TO, want 3 (two 451, one accepted)", n)
	}
	e.notify.WaitFor(t, 3, wait)
	sent, failed := e.events(t)
	if len(sent) != 1 || len(failed) != 2 {
		t.Fatalf("sent %v failed %v", sent, failed)
	}
	for i, f := range failed {
		if f.GetSmtpCode() != 451 || f.GetPermanent() || f.GetAttempt() != int32(i+1) || !strings.Contains(f.GetSmtpMessage(), "greylisted") {
			t.Errorf("failed event %v", f)
		}
	}
}

func TestSMTP5xxIsRecordedNotRetried(t *testing.T) {
	e := newEnv(t)
	e.setReject(func(to string) *mailcapture.Reply {
		if to == "gone@example.test" {
			return &mailcapture.Reply{Code: 550, Message: "mailbox unavailable"}
		}
		return nil
	})
	e.start(t)
	e.publish(t, subjects.CatalogConnectorCreated, "created-c1",
		connectorCreated("c1", "", owner("i-gone", "gone@example.test"), owner("i-bob", "bob@example.test")))
	e.mails(t, 1)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	time.Sleep(3 * e.cfg.RetryMax) // time enough for a retry that must not happen
	if n := e.rcptCount("gone@example.test"); n != 1 {
		t.Fatalf("%d RCPT TO gone@, want 1", n)
	}
	e.notify.WaitFor(t, 2, wait)
	sent, failed := e.events(t)
	if len(sent) != 1 || sent[0].GetRecipients()[0] != "bob@example.test" || len(failed) != 1 {
		t.Fatalf("sent %v failed %v", sent, failed)
	}
	f := failed[0]
	if f.GetSmtpCode() != 550 || !f.GetPermanent() || f.GetAttempt() != 1 || f.GetRecipients()[0] != "gone@example.test" ||
		!strings.Contains(f.GetSmtpMessage(), "mailbox unavailable") || f.GetTemplate() != "connector_setup" || f.GetConnectorId() != "c1" {
		t.Fatalf("failed event %v", f)
	}
}

func TestInvalidAddressNeverReachesSMTP(t *testing.T) {
	e := newEnv(t)
	e.start(t)
	e.publish(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "", owner("i-x", "bob at example dot test")))
	e.notify.WaitFor(t, 1, wait)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	if c := e.capture.Connections(); c != 0 {
		t.Fatalf("%d SMTP connections", c)
	}
	_, failed := e.events(t)
	if len(failed) != 1 || !failed[0].GetPermanent() || failed[0].GetSmtpCode() != 0 || !strings.Contains(failed[0].GetSmtpMessage(), "invalid recipient address") {
		t.Fatalf("failed %v", failed)
	}
}

func TestRateLimitPerRecipient(t *testing.T) {
	e := newEnv(t)
	e.cfg.PerRecipientPerHour = 2
	e.start(t)
	for _, c := range []string{"c1", "c2", "c3"} {
		e.publish(t, subjects.CatalogConnectorCreated, "created-"+c, connectorCreated(c, "", owner("i-bob", "bob@example.test")))
	}
	e.notify.WaitFor(t, 3, wait)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	if n := len(e.recipients(t)); n != 2 {
		t.Fatalf("%d emails, want 2", n)
	}
	_, failed := e.events(t)
	if len(failed) != 1 || !failed[0].GetPermanent() || !strings.Contains(failed[0].GetSmtpMessage(), "rate limit") {
		t.Fatalf("failed %v", failed)
	}
}

func TestOldEventsAreNotMailed(t *testing.T) {
	e := newEnv(t)
	e.publish(t, subjects.CatalogConnectorCreated, "created-c1", connectorCreated("c1", "", owner("i-bob", "bob@example.test")))
	time.Sleep(300 * time.Millisecond)
	e.cfg.MaxEventAge = 200 * time.Millisecond
	e.start(t)
	e.drained(t, subjects.StreamCatalog, notifier.ConsumerConnectors)
	if n := e.capture.Connections(); n != 0 {
		t.Fatalf("%d SMTP connections", n)
	}
	contains(t, "logs", e.logs.String(), "older than the notifier's maximum event age")
}
