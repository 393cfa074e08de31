// Package subjects names everything on the accessbus NATS JetStream bus: the
// streams and their subject filters, a builder for every subject, a parser
// for subjects, and the deterministic Nats-Msg-Id of a message.
//
// Subjects are lowercase and read <domain>.<connector>.<entity>.<verb>, such
// as access.c1.grant.added (see ARCHITECTURE.md and docs/events.md). Every
// builder that takes a connector id validates it, because an id with a dot or
// a wildcard in it would publish to, or subscribe to, someone else's subjects.
// Subjects that name no connector are constants.
package subjects

import (
	"fmt"
	"strings"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// Stream names and the subject filter each stream captures: one stream per
// domain.
const (
	// StreamAccess is the public change log of resources and grants.
	StreamAccess = "ACCESS"
	// FilterAccess is the subject filter of StreamAccess.
	FilterAccess = "access.>"
	// StreamSync holds sync requests and sync run events.
	StreamSync = "SYNC"
	// FilterSync is the subject filter of StreamSync.
	FilterSync = "sync.>"
	// StreamProvisioning holds provisioning requests, results and expiry warnings.
	StreamProvisioning = "PROVISIONING"
	// FilterProvisioning is the subject filter of StreamProvisioning.
	FilterProvisioning = "provisioning.>"
	// StreamCatalog holds connector, application and identity events.
	StreamCatalog = "CATALOG"
	// FilterCatalog is the subject filter of StreamCatalog.
	FilterCatalog = "catalog.>"
	// StreamOktaHooks holds raw Okta event-hook deliveries.
	StreamOktaHooks = "OKTA_HOOKS"
	// FilterOktaHooks is the subject filter of StreamOktaHooks.
	FilterOktaHooks = "okta.>"
	// StreamNotify holds the notifier's record of emails sent and failed.
	StreamNotify = "NOTIFY"
	// FilterNotify is the subject filter of StreamNotify.
	FilterNotify = "notify.>"
	// StreamDLQ holds messages that consumers gave up on, with the reason.
	StreamDLQ = "DLQ"
	// FilterDLQ is the subject filter of StreamDLQ.
	FilterDLQ = "dlq.>"
)

// Domains: the first token of every subject.
const (
	// DomainAccess is the domain of resource and grant changes.
	DomainAccess = "access"
	// DomainSync is the domain of sync requests and runs.
	DomainSync = "sync"
	// DomainProvisioning is the domain of provisioning requests and results.
	DomainProvisioning = "provisioning"
	// DomainCatalog is the domain of connector, application and identity events.
	DomainCatalog = "catalog"
	// DomainOkta is the domain of raw Okta event-hook deliveries.
	DomainOkta = "okta"
	// DomainNotify is the domain of the notifier's email events.
	DomainNotify = "notify"
	// DomainDLQ is the domain of dead letters.
	DomainDLQ = "dlq"
)

// Entities: the token after the connector (or after the domain for catalog and
// notify subjects).
const (
	// EntityResource is a resource change; the resource kind token follows it.
	EntityResource = "resource"
	// EntityGrant is a grant change.
	EntityGrant = "grant"
	// EntityRequest is a sync or provisioning request.
	EntityRequest = "request"
	// EntityRun is a sync run event.
	EntityRun = "run"
	// EntityResult is a provisioning result.
	EntityResult = "result"
	// EntityExpiring is a warning that a time-bound grant expires soon.
	EntityExpiring = "expiring"
	// EntityHook is a raw Okta event-hook delivery.
	EntityHook = "hook"
	// EntityConnector is a connector event in the catalog.
	EntityConnector = "connector"
	// EntityApp is an application event in the catalog.
	EntityApp = "app"
	// EntityIdentity is a platform identity event in the catalog.
	EntityIdentity = "identity"
	// EntityEmail is an email event of the notifier.
	EntityEmail = "email"
)

// Verbs: the last token of a subject, a past participle.
const (
	// VerbUpserted: a resource, application or identity was created or changed.
	VerbUpserted = "upserted"
	// VerbDeleted: a resource, connector, application or identity is gone.
	VerbDeleted = "deleted"
	// VerbAdded: a grant was added (or its attributes changed).
	VerbAdded = "added"
	// VerbRemoved: a grant was removed.
	VerbRemoved = "removed"
	// VerbStarted: a sync run began.
	VerbStarted = "started"
	// VerbCompleted: a sync run finished.
	VerbCompleted = "completed"
	// VerbFailed: a sync run, a provisioning request or an email failed.
	VerbFailed = "failed"
	// VerbSucceeded: a provisioning request succeeded.
	VerbSucceeded = "succeeded"
	// VerbCreated: a connector was created.
	VerbCreated = "created"
	// VerbUpdated: a connector's settings changed.
	VerbUpdated = "updated"
	// VerbStatusChanged: a connector's status changed.
	VerbStatusChanged = "status_changed"
	// VerbOwnersAssigned: a connector got new owners.
	VerbOwnersAssigned = "owners_assigned"
	// VerbSent: an email was sent.
	VerbSent = "sent"
)

// Subjects that name no connector.
const (
	// CatalogConnectorCreated carries eventsv1.ConnectorCreated.
	CatalogConnectorCreated = "catalog.connector.created"
	// CatalogConnectorUpdated carries eventsv1.ConnectorUpdated.
	CatalogConnectorUpdated = "catalog.connector.updated"
	// CatalogConnectorStatusChanged carries eventsv1.ConnectorStatusChanged.
	CatalogConnectorStatusChanged = "catalog.connector.status_changed"
	// CatalogConnectorDeleted carries eventsv1.ConnectorDeleted.
	CatalogConnectorDeleted = "catalog.connector.deleted"
	// CatalogConnectorOwnersAssigned carries eventsv1.ConnectorOwnersAssigned.
	CatalogConnectorOwnersAssigned = "catalog.connector.owners_assigned"
	// CatalogAppUpserted carries eventsv1.ApplicationUpserted.
	CatalogAppUpserted = "catalog.app.upserted"
	// CatalogAppDeleted carries eventsv1.ApplicationDeleted.
	CatalogAppDeleted = "catalog.app.deleted"
	// CatalogIdentityUpserted carries eventsv1.IdentityUpserted.
	CatalogIdentityUpserted = "catalog.identity.upserted"
	// CatalogIdentityDeleted carries eventsv1.IdentityDeleted.
	CatalogIdentityDeleted = "catalog.identity.deleted"
	// NotifyEmailSent carries eventsv1.EmailSent.
	NotifyEmailSent = "notify.email.sent"
	// NotifyEmailFailed carries eventsv1.EmailFailed.
	NotifyEmailFailed = "notify.email.failed"
)

// Filters across every connector, for the consumers of ARCHITECTURE.md.
const (
	// AllGrantChanges matches every connector's grant.added and grant.removed.
	AllGrantChanges = "access.*.grant.*"
	// AllSyncRequests matches every connector's sync request (the sync work queue).
	AllSyncRequests = "sync.*.request"
	// AllSyncRuns matches every connector's sync run events.
	AllSyncRuns = "sync.*.run.*"
	// AllSyncRunsFailed matches every connector's failed sync runs.
	AllSyncRunsFailed = "sync.*.run.failed"
	// AllProvisioningRequests matches every connector's provisioning request
	// (the provisioning work queue).
	AllProvisioningRequests = "provisioning.*.request"
	// AllProvisioningResults matches every connector's provisioning results.
	AllProvisioningResults = "provisioning.*.result.*"
	// AllProvisioningFailed matches every connector's failed provisioning results.
	AllProvisioningFailed = "provisioning.*.result.failed"
	// AllProvisioningExpiring matches every connector's expiry warnings.
	AllProvisioningExpiring = "provisioning.*.expiring"
	// AllOktaHooks matches every connector's raw Okta hook deliveries.
	AllOktaHooks = "okta.*.hook"
	// AllCatalogConnector matches every connector event of the catalog.
	AllCatalogConnector = "catalog.connector.*"
)

// PayloadTypeJSON is the payload type of subjects that carry JSON rather than
// a protobuf message: raw Okta event-hook deliveries.
const PayloadTypeJSON = "application/json"

// MaxConnectorIDLen is the longest connector id accepted.
const MaxConnectorIDLen = 64

// Stream is one JetStream stream of the bus and the subjects it captures.
type Stream struct {
	// Name is the stream's name, such as "ACCESS".
	Name string
	// Filter is the subject filter it captures, such as "access.>".
	Filter string
	// Domain is the first token of its subjects, such as "access".
	Domain string
}

// Streams returns every stream of the bus, one per domain, in a fixed order.
// The slice is new on every call.
func Streams() []Stream {
	return []Stream{
		{StreamAccess, FilterAccess, DomainAccess},
		{StreamSync, FilterSync, DomainSync},
		{StreamProvisioning, FilterProvisioning, DomainProvisioning},
		{StreamCatalog, FilterCatalog, DomainCatalog},
		{StreamOktaHooks, FilterOktaHooks, DomainOkta},
		{StreamNotify, FilterNotify, DomainNotify},
		{StreamDLQ, FilterDLQ, DomainDLQ},
	}
}

// StreamOf returns the name of the stream that captures subject, judged by
// its first token.
func StreamOf(subject string) (string, error) {
	if err := validateSubject(subject); err != nil {
		return "", err
	}
	domain, _, _ := strings.Cut(subject, ".")
	for _, s := range Streams() {
		if s.Domain == domain {
			return s.Name, nil
		}
	}
	return "", fmt.Errorf("%w: %q: no stream captures domain %q", ErrUnknownSubject, subject, domain)
}

// ValidateConnectorID reports whether id can name a connector: it must be one
// NATS subject token of 1 to 64 lowercase letters a-z, digits, '-' and '_'.
// The error, wrapping ErrInvalidConnectorID, says what to change.
func ValidateConnectorID(id string) error {
	const rule = "use 1 to 64 characters from a-z, 0-9, '-' and '_'"
	if id == "" {
		return fmt.Errorf("%w: the id is empty: %s", ErrInvalidConnectorID, rule)
	}
	if len(id) > MaxConnectorIDLen {
		return fmt.Errorf("%w: %q is %d bytes long: shorten it to at most %d", ErrInvalidConnectorID, id, len(id), MaxConnectorIDLen)
	}
	for i, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
		case r >= 'A' && r <= 'Z':
			return fmt.Errorf("%w: %q has upper-case %q at byte %d: use lower case (%q)", ErrInvalidConnectorID, id, r, i, strings.ToLower(id))
		default:
			return fmt.Errorf("%w: %q has %q at byte %d: %s", ErrInvalidConnectorID, id, r, i, rule)
		}
	}
	return nil
}

// KindToken returns the subject token of a resource kind: "user", "group",
// "app", "standard_role", "custom_role" or "resource_set".
func KindToken(kind eventsv1.ResourceKind) (string, error) {
	switch kind {
	case eventsv1.ResourceKind_RESOURCE_KIND_USER:
		return "user", nil
	case eventsv1.ResourceKind_RESOURCE_KIND_GROUP:
		return "group", nil
	case eventsv1.ResourceKind_RESOURCE_KIND_APP:
		return "app", nil
	case eventsv1.ResourceKind_RESOURCE_KIND_STANDARD_ROLE:
		return "standard_role", nil
	case eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE:
		return "custom_role", nil
	case eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET:
		return "resource_set", nil
	default:
		return "", fmt.Errorf("%w: %v has no subject token", ErrUnknownResourceKind, kind)
	}
}

// KindFromToken is the inverse of KindToken.
func KindFromToken(token string) (eventsv1.ResourceKind, error) {
	switch token {
	case "user":
		return eventsv1.ResourceKind_RESOURCE_KIND_USER, nil
	case "group":
		return eventsv1.ResourceKind_RESOURCE_KIND_GROUP, nil
	case "app":
		return eventsv1.ResourceKind_RESOURCE_KIND_APP, nil
	case "standard_role":
		return eventsv1.ResourceKind_RESOURCE_KIND_STANDARD_ROLE, nil
	case "custom_role":
		return eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE, nil
	case "resource_set":
		return eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET, nil
	default:
		return eventsv1.ResourceKind_RESOURCE_KIND_UNSPECIFIED,
			fmt.Errorf("%w: token %q (want user, group, app, standard_role, custom_role or resource_set)", ErrUnknownResourceKind, token)
	}
}

// ResourceUpserted returns access.<connector>.resource.<kind>.upserted, the
// subject of eventsv1.ResourceUpserted.
func ResourceUpserted(connector string, kind eventsv1.ResourceKind) (string, error) {
	return resource(connector, kind, VerbUpserted)
}

// ResourceDeleted returns access.<connector>.resource.<kind>.deleted, the
// subject of eventsv1.ResourceDeleted.
func ResourceDeleted(connector string, kind eventsv1.ResourceKind) (string, error) {
	return resource(connector, kind, VerbDeleted)
}

// GrantAdded returns access.<connector>.grant.added, the subject of
// eventsv1.GrantAdded.
func GrantAdded(connector string) (string, error) {
	return connectorSubject(DomainAccess, connector, EntityGrant, VerbAdded)
}

// GrantRemoved returns access.<connector>.grant.removed, the subject of
// eventsv1.GrantRemoved.
func GrantRemoved(connector string) (string, error) {
	return connectorSubject(DomainAccess, connector, EntityGrant, VerbRemoved)
}

// ConnectorAccess returns access.<connector>.>, the filter of one connector's
// resource and grant changes (what a consumer bootstrapped from the
// connector's snapshot follows).
func ConnectorAccess(connector string) (string, error) {
	return connectorSubject(DomainAccess, connector, ">")
}

// AllResourceChanges returns access.*.resource.<kind>.*, the filter of every
// connector's changes to one kind of resource.
func AllResourceChanges(kind eventsv1.ResourceKind) (string, error) {
	tok, err := KindToken(kind)
	if err != nil {
		return "", err
	}
	return DomainAccess + ".*." + EntityResource + "." + tok + ".*", nil
}

// SyncRequest returns sync.<connector>.request, the subject of
// eventsv1.SyncRequest.
func SyncRequest(connector string) (string, error) {
	return connectorSubject(DomainSync, connector, EntityRequest)
}

// SyncRunStarted returns sync.<connector>.run.started, the subject of
// eventsv1.SyncRunStarted.
func SyncRunStarted(connector string) (string, error) {
	return connectorSubject(DomainSync, connector, EntityRun, VerbStarted)
}

// SyncRunCompleted returns sync.<connector>.run.completed, the subject of
// eventsv1.SyncRunCompleted.
func SyncRunCompleted(connector string) (string, error) {
	return connectorSubject(DomainSync, connector, EntityRun, VerbCompleted)
}

// SyncRunFailed returns sync.<connector>.run.failed, the subject of
// eventsv1.SyncRunFailed.
func SyncRunFailed(connector string) (string, error) {
	return connectorSubject(DomainSync, connector, EntityRun, VerbFailed)
}

// ProvisioningRequest returns provisioning.<connector>.request, the subject of
// eventsv1.ProvisioningRequest.
func ProvisioningRequest(connector string) (string, error) {
	return connectorSubject(DomainProvisioning, connector, EntityRequest)
}

// ProvisioningSucceeded returns provisioning.<connector>.result.succeeded, the
// subject of an eventsv1.ProvisioningResult with outcome SUCCEEDED.
func ProvisioningSucceeded(connector string) (string, error) {
	return connectorSubject(DomainProvisioning, connector, EntityResult, VerbSucceeded)
}

// ProvisioningFailed returns provisioning.<connector>.result.failed, the
// subject of an eventsv1.ProvisioningResult with outcome FAILED.
func ProvisioningFailed(connector string) (string, error) {
	return connectorSubject(DomainProvisioning, connector, EntityResult, VerbFailed)
}

// ProvisioningResult returns the subject of res: ProvisioningSucceeded or
// ProvisioningFailed of its connector, chosen by its outcome.
func ProvisioningResult(res *eventsv1.ProvisioningResult) (string, error) {
	switch o := res.GetOutcome(); o {
	case eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED:
		return ProvisioningSucceeded(res.GetConnectorId())
	case eventsv1.ProvisioningResult_OUTCOME_FAILED:
		return ProvisioningFailed(res.GetConnectorId())
	default:
		return "", fmt.Errorf("%w: provisioning result %q has outcome %v: set SUCCEEDED or FAILED", ErrUnknownSubject, res.GetRequestId(), o)
	}
}

// ProvisioningExpiring returns provisioning.<connector>.expiring, the subject
// of eventsv1.ProvisioningExpiring.
func ProvisioningExpiring(connector string) (string, error) {
	return connectorSubject(DomainProvisioning, connector, EntityExpiring)
}

// OktaHook returns okta.<connector>.hook, the subject of a raw Okta
// event-hook delivery (the JSON body as Okta sent it, not protobuf).
func OktaHook(connector string) (string, error) {
	return connectorSubject(DomainOkta, connector, EntityHook)
}

// DeadLetter returns dlq.<original>, the subject of the eventsv1.DeadLetter
// for a message that was published to original.
func DeadLetter(original string) (string, error) {
	if err := validateSubject(original); err != nil {
		return "", fmt.Errorf("dead letter of %q: %w", original, err)
	}
	return DomainDLQ + "." + original, nil
}

func resource(connector string, kind eventsv1.ResourceKind, verb string) (string, error) {
	tok, err := KindToken(kind)
	if err != nil {
		return "", err
	}
	return connectorSubject(DomainAccess, connector, EntityResource, tok, verb)
}

// connectorSubject joins domain, the validated connector id and rest.
func connectorSubject(domain, connector string, rest ...string) (string, error) {
	if err := ValidateConnectorID(connector); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(domain)
	b.WriteByte('.')
	b.WriteString(connector)
	for _, t := range rest {
		b.WriteByte('.')
		b.WriteString(t)
	}
	return b.String(), nil
}

// validateSubject checks that s is a concrete subject one may publish to.
func validateSubject(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSubject)
	}
	for tok := range strings.SplitSeq(s, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("%w: %q has an empty token", ErrInvalidSubject, s)
		case tok == "*" || tok == ">":
			return fmt.Errorf("%w: %q has the wildcard %q", ErrInvalidSubject, s, tok)
		case strings.ContainsAny(tok, " \t\r\n"):
			return fmt.Errorf("%w: %q contains whitespace", ErrInvalidSubject, s)
		}
	}
	return nil
}
