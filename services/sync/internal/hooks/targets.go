package hooks

import (
	"cmp"
	"slices"
	"strings"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// System Log target types that name what accessbus syncs.
const (
	oktaUser        = "User"
	oktaGroup       = "UserGroup"
	oktaApp         = "AppInstance"
	oktaResourceSet = "RESOURCE_SET"
)

// Class says what accessbus does with an event type.
type Class int

// Classes of event types.
const (
	// Irrelevant types change nothing accessbus publishes (sign-ins,
	// password changes, ...): they map to no target.
	Irrelevant Class = iota
	// Governed types change resources or grants accessbus publishes: they
	// map to the targets to re-read.
	Governed
	// GovernedUnmapped types change what accessbus publishes, but no
	// SyncTarget kind can re-read it (iam.role.*: custom role definitions);
	// only a full sync picks the change up.
	GovernedUnmapped
)

// String names the class for logs and metrics.
func (c Class) String() string {
	switch c {
	case Governed:
		return "governed"
	case GovernedUnmapped:
		return "governed_unmapped"
	default:
		return "irrelevant"
	}
}

// rule maps the targets of one event to what must be re-read.
type rule func(ev LogEvent) []*eventsv1.SyncTarget

// rules maps the governance event types of shared/okta/FACTS.md (and a few
// more of the same families that change what is published) to rules.
var rules = map[string]rule{
	// A membership event names the User and the UserGroup.
	"group.user_membership.add":    groupMember,
	"group.user_membership.remove": groupMember,

	// An app membership event names AppUser, AppInstance and User.
	"application.user_membership.add":    appUser,
	"application.user_membership.remove": appUser,
	"application.user_membership.update": appUser,

	// A group's app assignment names the UserGroup and the AppInstance.
	"group.application_assignment.add":    appGroup,
	"group.application_assignment.remove": appGroup,
	"group.application_assignment.update": appGroup,

	// The user itself: status and profile.
	"user.lifecycle.create":           each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.activate":         each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.deactivate":       each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.suspend":          each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.unsuspend":        each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.reactivate":       each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.delete.initiated": each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.lifecycle.delete.completed": each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.account.update_profile":     each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	// Locking changes the user's status (LOCKED_OUT).
	"user.account.lock":            each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.account.unlock":          each(oktaUser, eventsv1.SyncTarget_KIND_USER),
	"user.account.unlock_by_admin": each(oktaUser, eventsv1.SyncTarget_KIND_USER),

	// The group itself.
	"group.lifecycle.create": each(oktaGroup, eventsv1.SyncTarget_KIND_GROUP),
	"group.lifecycle.delete": each(oktaGroup, eventsv1.SyncTarget_KIND_GROUP),
	"group.profile.update":   each(oktaGroup, eventsv1.SyncTarget_KIND_GROUP),

	// A principal's admin roles.
	"user.account.privilege.grant":  each(oktaUser, eventsv1.SyncTarget_KIND_USER_ROLES),
	"user.account.privilege.revoke": each(oktaUser, eventsv1.SyncTarget_KIND_USER_ROLES),
	"group.privilege.grant":         each(oktaGroup, eventsv1.SyncTarget_KIND_GROUP_ROLES),
	"group.privilege.revoke":        each(oktaGroup, eventsv1.SyncTarget_KIND_GROUP_ROLES),
}

// prefixRules are the families FACTS.md names with a wildcard; the first
// matching prefix wins.
var prefixRules = []struct {
	prefix string
	rule   rule
}{
	// The app itself: settings, status, deletion.
	{"application.lifecycle.", each(oktaApp, eventsv1.SyncTarget_KIND_APP)},
	// A binding names the resource set, the custom role and the principals
	// it assigns: their role assignments change with it.
	{"iam.resourceset.bindings.", resourceSetBinding},
	{"iam.resourceset.", each(oktaResourceSet, eventsv1.SyncTarget_KIND_RESOURCE_SET)},
}

// unmappedPrefixes are governed families no SyncTarget kind can re-read.
var unmappedPrefixes = []string{"iam.role."}

// Classify says what accessbus does with events of eventType.
func Classify(eventType string) Class {
	if findRule(eventType) != nil {
		return Governed
	}
	for _, p := range unmappedPrefixes {
		if strings.HasPrefix(eventType, p) {
			return GovernedUnmapped
		}
	}
	return Irrelevant
}

func findRule(eventType string) rule {
	if r, ok := rules[eventType]; ok {
		return r
	}
	for _, p := range prefixRules {
		if strings.HasPrefix(eventType, p.prefix) {
			return p.rule
		}
	}
	return nil
}

// Targets returns what must be re-read from Okta to confirm the change ev
// announces, without duplicates and in a stable order; none for an event of
// an irrelevant or unmapped type, a failed outcome, or one whose target[]
// lacks the objects its type names. The event is only a hint: the targeted
// resync reads the truth, so a stale, duplicated or reordered event can at
// worst cause a read that finds nothing new. Targets never relies on the
// order of target[].
func Targets(ev LogEvent) []*eventsv1.SyncTarget {
	if ev.Outcome.Result != "" && ev.Outcome.Result != "SUCCESS" {
		// A failed or skipped operation changed nothing.
		return nil
	}
	r := findRule(ev.EventType)
	if r == nil {
		return nil
	}
	return dedupe(r(ev))
}

// ids returns the ids of the event's targets of Okta type typ, in order.
func ids(ev LogEvent, typ string) []string {
	var out []string
	for _, t := range ev.Targets {
		if t.Type == typ && t.ID != "" {
			out = append(out, t.ID)
		}
	}
	return out
}

// each re-reads every target of Okta type typ as kind.
func each(typ string, kind eventsv1.SyncTarget_Kind) rule {
	return func(ev LogEvent) []*eventsv1.SyncTarget {
		var out []*eventsv1.SyncTarget
		for _, id := range ids(ev, typ) {
			out = append(out, &eventsv1.SyncTarget{Kind: kind, Id: id})
		}
		return out
	}
}

func principal(typ eventsv1.PrincipalType, id string) *eventsv1.Principal {
	return &eventsv1.Principal{Type: typ, Id: id}
}

// narrowed re-reads container's kind for each member, or the whole
// container when the event names no member.
func narrowed(kind eventsv1.SyncTarget_Kind, containers []string, ptype eventsv1.PrincipalType, members []string) []*eventsv1.SyncTarget {
	var out []*eventsv1.SyncTarget
	for _, c := range containers {
		if len(members) == 0 {
			out = append(out, &eventsv1.SyncTarget{Kind: kind, Id: c})
			continue
		}
		for _, m := range members {
			out = append(out, &eventsv1.SyncTarget{Kind: kind, Id: c, Member: principal(ptype, m)})
		}
	}
	return out
}

func groupMember(ev LogEvent) []*eventsv1.SyncTarget {
	return narrowed(eventsv1.SyncTarget_KIND_GROUP_MEMBERS, ids(ev, oktaGroup), eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, ids(ev, oktaUser))
}

func appUser(ev LogEvent) []*eventsv1.SyncTarget {
	return narrowed(eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS, ids(ev, oktaApp), eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, ids(ev, oktaUser))
}

func appGroup(ev LogEvent) []*eventsv1.SyncTarget {
	return narrowed(eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS, ids(ev, oktaApp), eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, ids(ev, oktaGroup))
}

func resourceSetBinding(ev LogEvent) []*eventsv1.SyncTarget {
	out := each(oktaResourceSet, eventsv1.SyncTarget_KIND_RESOURCE_SET)(ev)
	out = append(out, each(oktaUser, eventsv1.SyncTarget_KIND_USER_ROLES)(ev)...)
	return append(out, each(oktaGroup, eventsv1.SyncTarget_KIND_GROUP_ROLES)(ev)...)
}

// TargetKey is a target's identity: two targets with the same key re-read
// the same thing.
func TargetKey(t *eventsv1.SyncTarget) string {
	var b strings.Builder
	b.WriteString(t.GetKind().String())
	b.WriteByte('/')
	b.WriteString(t.GetId())
	if m := t.GetMember(); m != nil {
		b.WriteByte('/')
		b.WriteString(m.GetType().String())
		b.WriteByte('/')
		b.WriteString(m.GetId())
	}
	return b.String()
}

// dedupe drops repeated targets and sorts them by kind, then key.
func dedupe(ts []*eventsv1.SyncTarget) []*eventsv1.SyncTarget {
	if len(ts) == 0 {
		return nil
	}
	slices.SortFunc(ts, compareTargets)
	return slices.CompactFunc(ts, func(a, b *eventsv1.SyncTarget) bool { return compareTargets(a, b) == 0 })
}

func compareTargets(a, b *eventsv1.SyncTarget) int {
	return cmp.Or(cmp.Compare(a.GetKind(), b.GetKind()), cmp.Compare(TargetKey(a), TargetKey(b)))
}

// notHookEligible are mapped types Okta does not deliver through event
// hooks; they come only through the System Log.
var notHookEligible = map[string]bool{"user.lifecycle.delete.completed": true}

// prefixFamilies are the hook-eligible members of the families prefixRules
// match (Okta subscribes hooks to exact types only).
var prefixFamilies = []string{
	"application.lifecycle.activate", "application.lifecycle.create", "application.lifecycle.deactivate",
	"application.lifecycle.delete", "application.lifecycle.update",
	"iam.resourceset.bindings.add", "iam.resourceset.bindings.delete", "iam.resourceset.create", "iam.resourceset.delete",
	"iam.resourceset.resources.add", "iam.resourceset.resources.delete", "iam.resourceset.resources.update", "iam.resourceset.update",
}

// HookEventTypes returns the event types to subscribe a connector's event
// hook to: every hook-eligible type that maps to a target, sorted. Types no
// target covers (iam.role.*) are left out: their deliveries would only be
// counted.
func HookEventTypes() []string {
	out := slices.Clone(prefixFamilies)
	for t := range rules {
		if !notHookEligible[t] {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}
