package subjects

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// Subject is a bus subject taken apart by Parse.
type Subject struct {
	// Domain is the first token: DomainAccess, DomainSync, ...
	Domain string
	// Connector is the connector id; empty for catalog, notify and dlq subjects.
	Connector string
	// Entity is EntityResource, EntityGrant, EntityRequest, ...; empty for dlq.
	Entity string
	// Kind is the resource kind of an EntityResource subject; unspecified otherwise.
	Kind eventsv1.ResourceKind
	// Verb is the last token (VerbAdded, ...); empty for subjects that have
	// none: sync and provisioning requests, expiry warnings and Okta hooks.
	Verb string
	// Original is the subject a dead letter was first published to; set for
	// dlq subjects only. It is well-formed but not necessarily known: parse it
	// again to take it apart.
	Original string
}

// Parse takes a bus subject apart. It returns an error wrapping
// ErrInvalidSubject for a string that is not a concrete subject, and one
// wrapping ErrUnknownSubject (or ErrInvalidConnectorID, ErrUnknownResourceKind)
// for a well-formed subject that is not one of the bus's.
func Parse(subject string) (Subject, error) {
	if err := validateSubject(subject); err != nil {
		return Subject{}, err
	}
	t := strings.Split(subject, ".")
	unknown := func() (Subject, error) {
		return Subject{}, fmt.Errorf("%w: %q", ErrUnknownSubject, subject)
	}
	switch t[0] {
	case DomainDLQ:
		if len(t) < 2 {
			return unknown()
		}
		return Subject{Domain: DomainDLQ, Original: strings.Join(t[1:], ".")}, nil
	case DomainCatalog, DomainNotify:
		if len(t) != 3 || !knownVerb(t[0], t[1], t[2]) {
			return unknown()
		}
		return Subject{Domain: t[0], Entity: t[1], Verb: t[2]}, nil
	case DomainAccess, DomainSync, DomainProvisioning, DomainOkta:
		if len(t) < 3 {
			return unknown()
		}
		if err := ValidateConnectorID(t[1]); err != nil {
			return Subject{}, fmt.Errorf("parse %q: %w", subject, err)
		}
		s := Subject{Domain: t[0], Connector: t[1], Entity: t[2]}
		rest := t[3:]
		if t[0] == DomainAccess && t[2] == EntityResource && len(rest) > 0 {
			kind, err := KindFromToken(rest[0])
			if err != nil {
				return Subject{}, fmt.Errorf("parse %q: %w", subject, err)
			}
			s.Kind, rest = kind, rest[1:]
		}
		switch len(rest) {
		case 0:
		case 1:
			s.Verb = rest[0]
		default:
			return unknown()
		}
		if !knownVerb(s.Domain, s.Entity, s.Verb) {
			return unknown()
		}
		return s, nil
	default:
		return unknown()
	}
}

// knownVerb reports whether verb (possibly empty) ends a subject of entity in domain.
func knownVerb(domain, entity, verb string) bool {
	var verbs []string
	switch domain + "." + entity {
	case "access.resource":
		verbs = []string{VerbUpserted, VerbDeleted}
	case "access.grant":
		verbs = []string{VerbAdded, VerbRemoved}
	case "sync.request", "provisioning.request", "provisioning.expiring", "okta.hook":
		verbs = []string{""}
	case "sync.run":
		verbs = []string{VerbStarted, VerbCompleted, VerbFailed}
	case "provisioning.result":
		verbs = []string{VerbSucceeded, VerbFailed}
	case "catalog.connector":
		verbs = []string{VerbCreated, VerbUpdated, VerbStatusChanged, VerbDeleted, VerbOwnersAssigned}
	case "catalog.app", "catalog.identity":
		verbs = []string{VerbUpserted, VerbDeleted}
	case "notify.email":
		verbs = []string{VerbSent, VerbFailed}
	}
	for _, v := range verbs {
		if v == verb {
			return true
		}
	}
	return false
}

// String returns the subject s was parsed from.
func (s Subject) String() string {
	if s.Domain == DomainDLQ {
		return DomainDLQ + "." + s.Original
	}
	parts := []string{s.Domain}
	if s.Connector != "" {
		parts = append(parts, s.Connector)
	}
	parts = append(parts, s.Entity)
	if s.Entity == EntityResource {
		tok, err := KindToken(s.Kind)
		if err != nil {
			tok = "unspecified"
		}
		parts = append(parts, tok)
	}
	if s.Verb != "" {
		parts = append(parts, s.Verb)
	}
	return strings.Join(parts, ".")
}

// PayloadType returns what the Accessbus-Payload-Type header of a message on
// the subject must say: the full name of its protobuf message (such as
// "accessbus.events.v1.GrantAdded"), or PayloadTypeJSON for Okta hooks. A
// consumer decodes by the header; this is its cross-check, and the type to
// assume for a message that lacks the header. It returns "" for a Subject
// that Parse would not return.
func (s Subject) PayloadType() string {
	var m proto.Message
	switch s.Domain + "." + s.Entity + "." + s.Verb {
	case "access.resource.upserted":
		m = (*eventsv1.ResourceUpserted)(nil)
	case "access.resource.deleted":
		m = (*eventsv1.ResourceDeleted)(nil)
	case "access.grant.added":
		m = (*eventsv1.GrantAdded)(nil)
	case "access.grant.removed":
		m = (*eventsv1.GrantRemoved)(nil)
	case "sync.request.":
		m = (*eventsv1.SyncRequest)(nil)
	case "sync.run.started":
		m = (*eventsv1.SyncRunStarted)(nil)
	case "sync.run.completed":
		m = (*eventsv1.SyncRunCompleted)(nil)
	case "sync.run.failed":
		m = (*eventsv1.SyncRunFailed)(nil)
	case "provisioning.request.":
		m = (*eventsv1.ProvisioningRequest)(nil)
	case "provisioning.result.succeeded", "provisioning.result.failed":
		m = (*eventsv1.ProvisioningResult)(nil)
	case "provisioning.expiring.":
		m = (*eventsv1.ProvisioningExpiring)(nil)
	case "okta.hook.":
		return PayloadTypeJSON
	case "catalog.connector.created":
		m = (*eventsv1.ConnectorCreated)(nil)
	case "catalog.connector.updated":
		m = (*eventsv1.ConnectorUpdated)(nil)
	case "catalog.connector.status_changed":
		m = (*eventsv1.ConnectorStatusChanged)(nil)
	case "catalog.connector.deleted":
		m = (*eventsv1.ConnectorDeleted)(nil)
	case "catalog.connector.owners_assigned":
		m = (*eventsv1.ConnectorOwnersAssigned)(nil)
	case "catalog.app.upserted":
		m = (*eventsv1.ApplicationUpserted)(nil)
	case "catalog.app.deleted":
		m = (*eventsv1.ApplicationDeleted)(nil)
	case "catalog.identity.upserted":
		m = (*eventsv1.IdentityUpserted)(nil)
	case "catalog.identity.deleted":
		m = (*eventsv1.IdentityDeleted)(nil)
	case "notify.email.sent":
		m = (*eventsv1.EmailSent)(nil)
	case "notify.email.failed":
		m = (*eventsv1.EmailFailed)(nil)
	case "dlq..":
		m = (*eventsv1.DeadLetter)(nil)
	default:
		return ""
	}
	return string(m.ProtoReflect().Descriptor().FullName())
}
