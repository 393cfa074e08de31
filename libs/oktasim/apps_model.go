package oktasim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Okta's app lifecycle statuses.
const (
	AppActive   = "ACTIVE"
	AppInactive = "INACTIVE"
)

// AppSpec describes an app for CreateApp.
type AppSpec struct {
	// Name is the app's key (Okta's app definition). Empty takes the
	// custom app's name of the signOnMode (BOOKMARK "bookmark",
	// OPENID_CONNECT "oidc_client", ...) or one made from the label.
	Name string
	// Label is the display name; required.
	Label string
	// SignOnMode is one of Okta's sign-on modes (SAML_2_0, BOOKMARK, ...).
	SignOnMode string
	// Status is ACTIVE (the default) or INACTIVE.
	Status string
	// Features are the app's enabled features (PUSH_NEW_USERS, ...).
	Features []string
	// Connection is the provisioning connection; nil for an SSO-only app.
	Connection *AppConnection
	// Created defaults to the org's current time.
	Created time.Time
}

// appDefinitions are the app names the spec gives custom apps of each
// signOnMode (nil: any name): a custom BOOKMARK app is "bookmark", and so
// on. Okta Integration Network apps keep their own names whatever their
// mode (office365 signs on with WS_FEDERATION), so other names are
// accepted; the spec's per-mode schemas describe custom apps only.
var appDefinitions = map[string][]string{
	"AUTO_LOGIN":            nil,
	"BASIC_AUTH":            {"template_basic_auth"},
	"BOOKMARK":              {"bookmark"},
	"BROWSER_PLUGIN":        {"template_swa", "template_swa3field"},
	"OPENID_CONNECT":        {"oidc_client"},
	"SAML_1_1":              nil,
	"SAML_2_0":              nil,
	"SECURE_PASSWORD_STORE": {"template_sps"},
	"WS_FEDERATION":         {"template_wsfed"},
}

// appFeatures are the feature names the spec's Application.features allows.
var appFeatures = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields(`GROUP_PUSH IMPORT_NEW_USERS IMPORT_PROFILE_UPDATES IMPORT_USER_SCHEMA
		PROFILE_MASTERING PUSH_NEW_USERS PUSH_PASSWORD_UPDATES PUSH_PROFILE_UPDATES PUSH_USER_DEACTIVATION
		REACTIVATE_USERS OUTBOUND_DEL_AUTH DESKTOP_SSO FEDERATED_PROFILE SUPPRESS_ACTIVATION_EMAIL
		PUSH_PENDING_USERS MFA UPDATE_EXISTING_USERNAME EXCLUDE_USERNAME_UPDATE_ON_PROFILE_PUSH
		EXCHANGE_ACTIVE_SYNC IMPORT_SYNC IMPORT_SYNC_CONTACTS DEVICE_COMPLIANCE VPN_CONFIG
		IMPORT_SCHEMA_ENUM_VALUES SCIM_PROVISIONING DEVICE_FILTER_IN_SIGN_ON_RULES PROFILE_TEMPLATE_UPGRADE
		DEFAULT_PUSH_STATUS_TO_PUSH REAL_TIME_SYNC SSO AUTHN_CONTEXT JIT_PROVISIONING GROUP_SYNC
		OPP_SCIM_INCREMENTAL_IMPORTS IN_MEMORY_APP_USER LOG_STREAMING OAUTH_INTEGRATION IDP
		PUSH_NEW_USERS_WITHOUT_PASSWORD SKYHOOK_SERVICE ENTITLEMENT_MANAGEMENT PUSH_NEW_USERS_WITH_HASHED_PASSWORD`) {
		m[f] = true
	}
	return m
}()

// provisioningFeatures are the features that move data between Okta and
// the app; an app with an enabled connection and one of them provisions.
var provisioningFeatures = []string{
	"PUSH_NEW_USERS", "PUSH_PROFILE_UPDATES", "PUSH_USER_DEACTIVATION", "PUSH_PASSWORD_UPDATES",
	"REACTIVATE_USERS", "IMPORT_NEW_USERS", "IMPORT_PROFILE_UPDATES", "PROFILE_MASTERING",
	"GROUP_PUSH", "SCIM_PROVISIONING",
}

func (a *App) hasFeature(name string) bool { return slices.Contains(a.Features, name) }

// provisions reports whether the app has an enabled provisioning connection
// and a provisioning feature. It decides app users' syncState: Okta reports
// DISABLED for apps that do not provision (SSO only, or connection off) and
// SYNCHRONIZED once a push has completed, which in the simulator is at once.
func (a *App) provisions() bool {
	if a.Connection == nil || a.Connection.Status != "ENABLED" {
		return false
	}
	return slices.ContainsFunc(provisioningFeatures, a.hasFeature)
}

// appUserStatus is the status of a new app user: PROVISIONED when Okta
// pushed the account to the app (PUSH_NEW_USERS), else ACTIVE.
func (a *App) appUserStatus() (status, syncState string) {
	if !a.provisions() {
		return "ACTIVE", "DISABLED"
	}
	if a.hasFeature("PUSH_NEW_USERS") {
		return "PROVISIONED", "SYNCHRONIZED"
	}
	return "ACTIVE", "SYNCHRONIZED"
}

// CreateApp adds an app instance. With an actor it logs
// application.lifecycle.create, and application.lifecycle.activate for an
// active app, as Okta does for a create with activate=true.
func (o *Org) CreateApp(by *LogActor, s AppSpec) (*App, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.createApp(by, s)
}

func (o *Org) createApp(by *LogActor, s AppSpec) (*App, error) {
	if strings.TrimSpace(s.Label) == "" {
		return nil, fmt.Errorf("create app: label is required: %w", ErrInvalid)
	}
	names, ok := appDefinitions[s.SignOnMode]
	if !ok {
		return nil, fmt.Errorf("create app %q: signOnMode %q: %w", s.Label, s.SignOnMode, ErrInvalid)
	}
	name := s.Name
	switch {
	case name == "" && names != nil:
		name = names[0]
	case name == "":
		name = appNameFromLabel(s.Label)
	}
	status := s.Status
	if status == "" {
		status = AppActive
	}
	if status != AppActive && status != AppInactive {
		return nil, fmt.Errorf("create app %q: status %q: %w", s.Label, status, ErrInvalid)
	}
	features := make([]string, 0, len(s.Features))
	for _, f := range s.Features {
		if !appFeatures[f] {
			return nil, fmt.Errorf("create app %q: feature %q: %w", s.Label, f, ErrInvalid)
		}
		if !slices.Contains(features, f) {
			features = append(features, f)
		}
	}
	var conn *AppConnection
	if s.Connection != nil {
		c := *s.Connection
		if c.Status == "" {
			c.Status = "ENABLED"
		}
		if c.AuthScheme == "" {
			c.AuthScheme = "TOKEN"
		}
		if c.Status != "ENABLED" && c.Status != "DISABLED" {
			return nil, fmt.Errorf("create app %q: connection status %q: %w", s.Label, c.Status, ErrInvalid)
		}
		if c.AuthScheme != "TOKEN" && c.AuthScheme != "OAUTH2" {
			return nil, fmt.Errorf("create app %q: connection authScheme %q: %w", s.Label, c.AuthScheme, ErrInvalid)
		}
		conn = &c
	}
	created := s.Created
	if created.IsZero() {
		created = o.clock.Now()
	}
	a := &App{
		ID: o.newID("0oa"), Name: name, Label: s.Label, Status: status, SignOnMode: s.SignOnMode,
		Features: features, Created: created, LastUpdated: created, Connection: conn,
		users: newOrdered[*AppUser](), groups: newOrdered[*AppGroup](),
	}
	a.raw = render(o.appView(a))
	o.apps.put(a.ID, a)
	if by != nil {
		o.emit("application.lifecycle.create", "Create application", *by, appTarget(a))
		if status == AppActive {
			o.emit("application.lifecycle.activate", "Activate application", *by, appTarget(a))
		}
	}
	return a, nil
}

// appNameFromLabel makes an app key the way Okta names custom apps: the
// label in lower case, letters and digits only, words joined by '_'.
func appNameFromLabel(label string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(label) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			sep = false
		} else {
			sep = true
		}
	}
	if b.Len() == 0 {
		return "app"
	}
	return b.String()
}

// SetAppStatus activates (ACTIVE) or deactivates (INACTIVE) an app. Setting
// the status it already has changes nothing and logs nothing, as Okta's
// lifecycle operations are idempotent. Assignments survive deactivation.
func (o *Org) SetAppStatus(by *LogActor, appID, status string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.apps.get(appID)
	if !ok {
		return fmt.Errorf("set status of app %s: %w", appID, ErrNotFound)
	}
	return o.setAppStatus(by, a, status)
}

func (o *Org) setAppStatus(by *LogActor, a *App, status string) error {
	if status != AppActive && status != AppInactive {
		return fmt.Errorf("set status of app %s to %q: %w", a.ID, status, ErrInvalid)
	}
	if a.Status == status {
		return nil
	}
	a.Status = status
	a.LastUpdated = o.clock.Now()
	a.raw = render(o.appView(a))
	if by != nil {
		if status == AppActive {
			o.emit("application.lifecycle.activate", "Activate application", *by, appTarget(a))
		} else {
			o.emit("application.lifecycle.deactivate", "Deactivate application", *by, appTarget(a))
		}
	}
	return nil
}

// DeleteApp deletes an inactive app with its user and group assignments.
// Okta refuses to delete an active app (ErrNotWritable here; 403 E0000056
// over HTTP). Only application.lifecycle.delete is logged: Okta does not log
// a membership removal per app user when the app itself goes.
func (o *Org) DeleteApp(by *LogActor, appID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.apps.get(appID)
	if !ok {
		return fmt.Errorf("delete app %s: %w", appID, ErrNotFound)
	}
	return o.deleteApp(by, a)
}

func (o *Org) deleteApp(by *LogActor, a *App) error {
	if a.Status == AppActive {
		return fmt.Errorf("delete app %s: it is active, deactivate it first: %w", a.ID, ErrNotWritable)
	}
	a.groups.each(func(gid string, _ *AppGroup) bool {
		if g, ok := o.groups.get(gid); ok {
			delete(g.apps, a.ID)
		}
		return true
	})
	o.apps.del(a.ID)
	if by != nil {
		o.emit("application.lifecycle.delete", "Delete application", *by, appTarget(a))
	}
	return nil
}

// appAssignable reports whether Okta lets a user hold app assignments:
// a deactivated (DEPROVISIONED) user cannot be assigned, and loses its
// assignments when deactivated.
func appAssignable(u *User) bool { return u.Status != "DEPROVISIONED" }

// AssignUserToApp assigns a user to an app directly (scope USER), with an
// app profile. It reports whether the user became an app user; a user who
// already had the app through a group is converted to scope USER, and a
// direct user gets the profile merged in (both log
// application.user_membership.update). A deactivated user cannot be
// assigned (ErrNotWritable; 403 E0000117 over HTTP).
func (o *Org) AssignUserToApp(by *LogActor, appID, userID string, profile map[string]any) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, u, err := o.appAndUser(appID, userID)
	if err != nil {
		return false, fmt.Errorf("assign user to app: %w", err)
	}
	_, created, err := o.assignUser(by, a, u, profile)
	return created, err
}

func (o *Org) appAndUser(appID, userID string) (*App, *User, error) {
	a, ok := o.apps.get(appID)
	if !ok {
		return nil, nil, fmt.Errorf("app %s: %w", appID, ErrNotFound)
	}
	u, ok := o.users.get(userID)
	if !ok {
		return nil, nil, fmt.Errorf("user %s: %w", userID, ErrNotFound)
	}
	return a, u, nil
}

func (o *Org) assignUser(by *LogActor, a *App, u *User, profile map[string]any) (*AppUser, bool, error) {
	if !appAssignable(u) {
		return nil, false, fmt.Errorf("assign user %s (status %s) to app %s: %w", u.ID, u.Status, a.ID, ErrNotWritable)
	}
	now := o.clock.Now()
	if au, ok := a.users.get(u.ID); ok {
		au.Direct = true
		if profile != nil {
			au.Profile = mergeAppProfile(au.Profile, profile)
		}
		if o.refreshAppUser(a, au, now) && by != nil {
			o.emit("application.user_membership.update", "Update user's application membership", *by, appUserTargets(a, u)...)
		}
		return au, false, nil
	}
	if profile == nil {
		profile = map[string]any{}
	}
	au := o.newAppUser(a, u, now, profile)
	au.Direct = true
	// The user may be in assigned groups without holding the app yet (it
	// was deactivated when they were assigned): record them, so a later
	// direct unassignment leaves the user with scope GROUP as Okta would.
	for gid := range u.groups {
		if _, ok := a.groups.get(gid); ok {
			au.ViaGroups[gid] = struct{}{}
		}
	}
	au.Scope = ScopeUser
	au.raw = o.renderAppUser(a, au)
	a.users.put(u.ID, au)
	if by != nil {
		o.emit("application.user_membership.add", "Add user to application membership", *by, appUserTargets(a, u)...)
	}
	return au, true, nil
}

// updateAppUser is the update endpoint: it merges profile and, with
// toUser, converts a group assignment into a direct one.
func (o *Org) updateAppUser(by *LogActor, a *App, u *User, toUser bool, profile map[string]any) (*AppUser, error) {
	au, ok := a.users.get(u.ID)
	if !ok {
		return nil, fmt.Errorf("update app user %s of app %s: %w", u.ID, a.ID, ErrNotFound)
	}
	if !appAssignable(u) {
		return nil, fmt.Errorf("update app user %s (status %s) of app %s: %w", u.ID, u.Status, a.ID, ErrNotWritable)
	}
	if toUser {
		au.Direct = true
	}
	if profile != nil {
		au.Profile = mergeAppProfile(au.Profile, profile)
	}
	if o.refreshAppUser(a, au, o.clock.Now()) && by != nil {
		o.emit("application.user_membership.update", "Update user's application membership", *by, appUserTargets(a, u)...)
	}
	return au, nil
}

// UnassignUserFromApp removes a user's direct assignment; it reports
// whether there was one (false, like RemoveMember, when the user does not
// have the app at all). A user who still has the app through an assigned
// group keeps it, with scope GROUP (logged as an update); otherwise the app
// user goes. A user who has the app only through groups cannot be
// unassigned directly (ErrNotWritable; 403 E0000046 over HTTP): remove
// them from the group instead.
func (o *Org) UnassignUserFromApp(by *LogActor, appID, userID string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, u, err := o.appAndUser(appID, userID)
	if err != nil {
		return false, fmt.Errorf("unassign user from app: %w", err)
	}
	return o.unassignUser(by, a, u)
}

func (o *Org) unassignUser(by *LogActor, a *App, u *User) (bool, error) {
	au, ok := a.users.get(u.ID)
	if !ok {
		return false, nil
	}
	if !au.Direct {
		return false, fmt.Errorf("unassign user %s from app %s: assigned through a group only: %w", u.ID, a.ID, ErrNotWritable)
	}
	au.Direct = false
	if len(au.ViaGroups) > 0 {
		// The direct profile goes with the direct assignment; the group's
		// profile applies again.
		au.Profile = nil
		if o.refreshAppUser(a, au, o.clock.Now()) && by != nil {
			o.emit("application.user_membership.update", "Update user's application membership", *by, appUserTargets(a, u)...)
		}
		return true, nil
	}
	a.users.del(u.ID)
	if by != nil {
		o.emit("application.user_membership.remove", "Remove user's application membership", *by, appUserTargets(a, u)...)
	}
	return true, nil
}

// AssignGroupToApp assigns a group to an app: every member (except
// deactivated users) becomes an app user with scope GROUP, or keeps scope
// USER if directly assigned. A negative priority takes the next one after
// the app's lowest-ranked group, as Okta does when none is given. It
// reports whether the assignment is new; assigning again updates priority
// and (when profile is not nil) the profile, logging
// group.application_assignment.update.
func (o *Org) AssignGroupToApp(by *LogActor, appID, groupID string, priority int, profile map[string]any) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, g, err := o.appAndGroup(appID, groupID)
	if err != nil {
		return false, fmt.Errorf("assign group to app: %w", err)
	}
	_, created := o.assignGroup(by, a, g, priority, profile)
	return created, nil
}

func (o *Org) appAndGroup(appID, groupID string) (*App, *Group, error) {
	a, ok := o.apps.get(appID)
	if !ok {
		return nil, nil, fmt.Errorf("app %s: %w", appID, ErrNotFound)
	}
	g, ok := o.groups.get(groupID)
	if !ok {
		return nil, nil, fmt.Errorf("group %s: %w", groupID, ErrNotFound)
	}
	return a, g, nil
}

func (o *Org) assignGroup(by *LogActor, a *App, g *Group, priority int, profile map[string]any) (*AppGroup, bool) {
	now := o.clock.Now()
	if ag, ok := a.groups.get(g.ID); ok {
		changed := false
		if priority >= 0 && priority != ag.Priority {
			ag.Priority, changed = priority, true
		}
		if profile != nil && !reflect.DeepEqual(profile, ag.Profile) {
			ag.Profile, changed = profile, true
		}
		if !changed {
			return ag, false
		}
		ag.LastUpdated = now
		ag.raw = render(o.appGroupView(a, ag))
		if by != nil {
			o.emit("group.application_assignment.update", "Update assigned application in group", *by, groupTarget(g), appTarget(a))
		}
		// Priority and profile decide the profile of members' app users.
		g.members.each(func(uid string, _ *User) bool {
			if au, ok := a.users.get(uid); ok {
				o.refreshAppUser(a, au, now)
			}
			return true
		})
		return ag, false
	}
	if priority < 0 {
		priority = 0
		a.groups.each(func(_ string, other *AppGroup) bool {
			priority = max(priority, other.Priority+1)
			return true
		})
	}
	if profile == nil {
		profile = map[string]any{}
	}
	ag := &AppGroup{GroupID: g.ID, Priority: priority, Profile: profile, LastUpdated: now}
	ag.raw = render(o.appGroupView(a, ag))
	a.groups.put(g.ID, ag)
	g.apps[a.ID] = struct{}{}
	if by != nil {
		o.emit("group.application_assignment.add", "Add assigned application to group", *by, groupTarget(g), appTarget(a))
	}
	g.members.each(func(_ string, u *User) bool {
		o.grantViaGroup(by, a, ag, u, now)
		return true
	})
	return ag, true
}

// UnassignGroupFromApp removes a group's assignment. Members lose the app
// unless another assigned group or a direct assignment still gives it. It
// reports whether the group was assigned.
func (o *Org) UnassignGroupFromApp(by *LogActor, appID, groupID string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, g, err := o.appAndGroup(appID, groupID)
	if err != nil {
		return false, fmt.Errorf("unassign group from app: %w", err)
	}
	return o.unassignGroup(by, a, g), nil
}

func (o *Org) unassignGroup(by *LogActor, a *App, g *Group) bool {
	if !a.groups.del(g.ID) {
		return false
	}
	delete(g.apps, a.ID)
	if by != nil {
		o.emit("group.application_assignment.remove", "Remove assigned application from group", *by, groupTarget(g), appTarget(a))
	}
	now := o.clock.Now()
	g.members.each(func(_ string, u *User) bool {
		o.revokeViaGroup(by, a, g.ID, u, now)
		return true
	})
	return true
}

// membershipChanged keeps the app users of group-assigned apps in step with
// a group's membership; o.mu is held. It costs O(apps of the group). It
// logs nothing, because addMember and removeMember do not pass their actor
// on; groupMembershipChanged does the same with an actor.
func (o *Org) membershipChanged(g *Group, u *User, added bool) {
	o.groupMembershipChanged(nil, g, u, added)
}

// groupMembershipChanged is membershipChanged logging, with an actor, the
// application.user_membership.add/remove events Okta logs when a
// membership change gives or takes an app.
func (o *Org) groupMembershipChanged(by *LogActor, g *Group, u *User, added bool) {
	if len(g.apps) == 0 {
		return
	}
	now := o.clock.Now()
	for _, appID := range appSortedKeys(g.apps) {
		a, ok := o.apps.get(appID)
		if !ok {
			continue
		}
		if added {
			if ag, ok := a.groups.get(g.ID); ok {
				o.grantViaGroup(by, a, ag, u, now)
			}
		} else {
			o.revokeViaGroup(by, a, g.ID, u, now)
		}
	}
}

// appSortedKeys returns a set's keys in order, so that what a change logs
// does not depend on map order; sets here hold a handful of ids.
func appSortedKeys(set map[string]struct{}) []string {
	if len(set) == 1 {
		for k := range set {
			return []string{k}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// grantViaGroup gives u the app through assigned group ag.
func (o *Org) grantViaGroup(by *LogActor, a *App, ag *AppGroup, u *User, now time.Time) {
	if !appAssignable(u) {
		return
	}
	if au, ok := a.users.get(u.ID); ok {
		if _, had := au.ViaGroups[ag.GroupID]; had {
			return
		}
		au.ViaGroups[ag.GroupID] = struct{}{}
		o.refreshAppUser(a, au, now)
		return
	}
	au := o.newAppUser(a, u, now, ag.Profile)
	au.ViaGroups[ag.GroupID] = struct{}{}
	au.raw = o.renderAppUser(a, au)
	a.users.put(u.ID, au)
	if by != nil {
		o.emit("application.user_membership.add", "Add user to application membership", *by, appUserTargets(a, u)...)
	}
}

// revokeViaGroup takes away the access u had through group gid; the app
// user goes when nothing else gives the app.
func (o *Org) revokeViaGroup(by *LogActor, a *App, gid string, u *User, now time.Time) {
	au, ok := a.users.get(u.ID)
	if !ok {
		return
	}
	if _, had := au.ViaGroups[gid]; !had {
		return
	}
	delete(au.ViaGroups, gid)
	if au.Direct || len(au.ViaGroups) > 0 {
		o.refreshAppUser(a, au, now)
		return
	}
	a.users.del(u.ID)
	if by != nil {
		o.emit("application.user_membership.remove", "Remove user's application membership", *by, appUserTargets(a, u)...)
	}
}

// unassignUserFromAllApps removes every app assignment of u, direct or
// through groups, as Okta does when a user is deactivated or deleted; o.mu
// is held. It scans all apps, which is fine for such rare events.
func (o *Org) unassignUserFromAllApps(by *LogActor, u *User) {
	o.apps.each(func(_ string, a *App) bool {
		if _, ok := a.users.get(u.ID); !ok {
			return true
		}
		a.users.del(u.ID)
		if by != nil {
			o.emit("application.user_membership.remove", "Remove user's application membership", *by, appUserTargets(a, u)...)
		}
		return true
	})
}

// restoreGroupApps gives u again the apps of its assigned groups, as Okta
// does when a deactivated user is reactivated; o.mu is held.
func (o *Org) restoreGroupApps(by *LogActor, u *User) {
	now := o.clock.Now()
	for _, gid := range appSortedKeys(u.groups) {
		g, ok := o.groups.get(gid)
		if !ok {
			continue
		}
		for _, appID := range appSortedKeys(g.apps) {
			a, ok := o.apps.get(appID)
			if !ok {
				continue
			}
			if ag, ok := a.groups.get(gid); ok {
				o.grantViaGroup(by, a, ag, u, now)
			}
		}
	}
}

// unassignGroupFromAllApps removes the app assignments of g, as Okta does
// when a group is deleted; o.mu is held. Call it before the members go.
func (o *Org) unassignGroupFromAllApps(by *LogActor, g *Group) {
	for _, appID := range appSortedKeys(g.apps) {
		if a, ok := o.apps.get(appID); ok {
			o.unassignGroup(by, a, g)
		}
	}
}

// appUserChanged re-renders u's app users after a change to the user
// (login, names), which the app users show; o.mu is held. It scans all apps.
func (o *Org) appUserChanged(u *User) {
	now := o.clock.Now()
	o.apps.each(func(_ string, a *App) bool {
		if au, ok := a.users.get(u.ID); ok {
			o.refreshAppUser(a, au, now)
		}
		return true
	})
}

func (o *Org) newAppUser(a *App, u *User, now time.Time, profile map[string]any) *AppUser {
	status, sync := a.appUserStatus()
	return &AppUser{
		UserID: u.ID, Scope: ScopeGroup, Status: status, SyncState: sync,
		Created: now, LastUpdated: now, Profile: profile, ViaGroups: map[string]struct{}{},
	}
}

// refreshAppUser recomputes an app user's scope and, for scope GROUP, its
// profile (that of its highest-priority group), and re-renders it. When
// what it shows changed, lastUpdated moves and it reports true.
func (o *Org) refreshAppUser(a *App, au *AppUser, now time.Time) bool {
	if au.Direct {
		au.Scope = ScopeUser
	} else {
		au.Scope = ScopeGroup
		if best := o.bestGroup(a, au); best != nil {
			au.Profile = best.Profile
		}
	}
	raw := o.renderAppUser(a, au)
	if string(raw) == string(au.raw) {
		return false
	}
	// Never before the assignment itself or its last change (the generator
	// replays history at chosen past times).
	if now.After(au.LastUpdated) {
		au.LastUpdated = now
	}
	au.raw = o.renderAppUser(a, au)
	return true
}

// bestGroup is the assigned group whose profile an app user of scope GROUP
// gets: Okta applies the group of highest priority (lowest number); ties go
// to the earlier assignment.
func (o *Org) bestGroup(a *App, au *AppUser) *AppGroup {
	var best *AppGroup
	var bestSeq uint64
	for gid := range au.ViaGroups {
		e, ok := a.groups.byID[gid]
		if !ok {
			continue
		}
		if best == nil || e.v.Priority < best.Priority || (e.v.Priority == best.Priority && e.seq < bestSeq) {
			best, bestSeq = e.v, e.seq
		}
	}
	return best
}

// mergeAppProfile returns base with the keys of update set; neither map is
// changed, since profile maps are shared between app users.
func mergeAppProfile(base, update map[string]any) map[string]any {
	m := make(map[string]any, len(base)+len(update))
	maps.Copy(m, base)
	maps.Copy(m, update)
	return m
}

// appUserID is the System Log id of an app user: Okta gives app users their
// own "0ua" ids; the simulator derives one from app and user so that it is
// stable without being stored.
func appUserID(appID, userID string) string {
	h := fnv.New64a()
	h.Write([]byte(appID))
	h.Write([]byte{'/'})
	h.Write([]byte(userID))
	return fmt.Sprintf("0ua%017x", h.Sum64())
}

// appUserTargets are the targets of an application.user_membership event:
// the AppUser, the AppInstance and the User, per FACTS.md.
func appUserTargets(a *App, u *User) []LogActor {
	name := u.Profile.FirstName + " " + u.Profile.LastName
	return []LogActor{
		{ID: appUserID(a.ID, u.ID), Type: "AppUser", AlternateID: u.Profile.Login, DisplayName: name},
		appTarget(a),
		userTarget(u),
	}
}

// renderAppUser renders an app user (spec: AppUser) by hand: it runs for
// every app user the generator makes, millions in a large org.
func (o *Org) renderAppUser(a *App, au *AppUser) []byte {
	var login string
	if u, ok := o.users.get(au.UserID); ok {
		login = u.Profile.Login
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = appendAppJSONString(b, au.UserID)
	if au.Status == "PROVISIONED" {
		// Set when Okta creates the account in the app.
		b = append(b, `,"externalId":`...)
		b = appendAppJSONString(b, appUserID(a.ID, au.UserID)[3:])
	}
	b = append(b, `,"created":`...)
	b = appendAppTime(b, au.Created)
	b = append(b, `,"lastUpdated":`...)
	b = appendAppTime(b, au.LastUpdated)
	b = append(b, `,"scope":`...)
	b = appendAppJSONString(b, au.Scope)
	b = append(b, `,"status":`...)
	b = appendAppJSONString(b, au.Status)
	b = append(b, `,"statusChanged":`...)
	b = appendAppTime(b, au.Created)
	b = append(b, `,"passwordChanged":null,"syncState":`...)
	b = appendAppJSONString(b, au.SyncState)
	if au.SyncState == "SYNCHRONIZED" {
		b = append(b, `,"lastSync":`...)
		b = appendAppTime(b, au.LastUpdated)
	}
	b = append(b, `,"credentials":{"userName":`...)
	b = appendAppJSONString(b, login)
	b = append(b, `},"profile":`...)
	if len(au.Profile) == 0 {
		b = append(b, `{}`...)
	} else {
		b = append(b, render(au.Profile)...)
	}
	b = append(b, `,"_links":{"app":{"href":`...)
	b = appendAppJSONString(b, o.base+"/api/v1/apps/"+a.ID)
	b = append(b, `},"user":{"href":`...)
	b = appendAppJSONString(b, o.base+"/api/v1/users/"+au.UserID)
	b = append(b, '}')
	if au.Scope == ScopeGroup {
		if best := o.bestGroup(a, au); best != nil {
			b = append(b, `,"group":{"href":`...)
			b = appendAppJSONString(b, o.base+"/api/v1/groups/"+best.GroupID)
			b = append(b, '}')
		}
	}
	return append(b, `}}`...)
}

// appendAppJSONString appends s as a JSON string; plain ASCII, the common
// case, is copied as is.
func appendAppJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendAppTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, '"')
}

// appGroupView is the JSON shape of a group assignment (spec:
// ApplicationGroupAssignment).
type appGroupView struct {
	ID          string         `json:"id"`
	LastUpdated oktaTime       `json:"lastUpdated"`
	Priority    int            `json:"priority"`
	Profile     map[string]any `json:"profile"`
	Links       map[string]any `json:"_links"`
}

func (o *Org) appGroupView(a *App, ag *AppGroup) appGroupView {
	profile := ag.Profile
	if profile == nil {
		profile = map[string]any{}
	}
	return appGroupView{
		ID: ag.GroupID, LastUpdated: oktaTime(ag.LastUpdated), Priority: ag.Priority, Profile: profile,
		Links: map[string]any{
			"app":   map[string]any{"href": o.href("/api/v1/apps/" + a.ID)},
			"self":  map[string]any{"href": o.href("/api/v1/apps/" + a.ID + "/groups/" + ag.GroupID)},
			"group": map[string]any{"href": o.href("/api/v1/groups/" + ag.GroupID)},
		},
	}
}

// appView is the JSON shape of an app (spec: Application and its
// signOnMode variants).
type appView struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Label         string         `json:"label"`
	Status        string         `json:"status"`
	LastUpdated   oktaTime       `json:"lastUpdated"`
	Created       oktaTime       `json:"created"`
	Accessibility map[string]any `json:"accessibility"`
	Visibility    map[string]any `json:"visibility"`
	Features      []string       `json:"features"`
	SignOnMode    string         `json:"signOnMode"`
	Credentials   map[string]any `json:"credentials"`
	Settings      map[string]any `json:"settings"`
	Links         map[string]any `json:"_links"`
}

func (o *Org) appView(a *App) appView {
	linkName := a.Name + "_link"
	self := o.href("/api/v1/apps/" + a.ID)
	links := map[string]any{
		"self":   map[string]any{"href": self},
		"users":  map[string]any{"href": self + "/users"},
		"groups": map[string]any{"href": self + "/groups"},
		"logo": []any{map[string]any{
			"name": "medium", "type": "image/png", "href": o.href("/assets/img/logos/default.png"),
		}},
		"appLinks": []any{map[string]any{
			"name": linkName, "type": "text/html", "href": o.href("/home/" + a.Name + "/" + a.ID + "/" + linkName),
		}},
	}
	if a.Status == AppActive {
		links["deactivate"] = map[string]any{"href": self + "/lifecycle/deactivate"}
	} else {
		links["activate"] = map[string]any{"href": self + "/lifecycle/activate"}
	}
	if a.SignOnMode == "SAML_2_0" || a.SignOnMode == "SAML_1_1" {
		links["metadata"] = map[string]any{"href": self + "/sso/saml/metadata", "type": "application/xml"}
	}
	features := a.Features
	if features == nil {
		features = []string{}
	}
	return appView{
		ID: a.ID, Name: a.Name, Label: a.Label, Status: a.Status,
		LastUpdated: oktaTime(a.LastUpdated), Created: oktaTime(a.Created),
		Accessibility: map[string]any{"selfService": false},
		Visibility: map[string]any{
			"autoSubmitToolbar": false,
			"hide":              map[string]any{"iOS": false, "web": false},
			"appLinks":          map[string]any{linkName: true},
		},
		Features:    features,
		SignOnMode:  a.SignOnMode,
		Credentials: appCredentials(a),
		Settings:    appSettings(a),
		Links:       links,
	}
}

// appCredentials are the credentials block of each signOnMode, with the
// fields the spec requires of it.
func appCredentials(a *App) map[string]any {
	c := map[string]any{"userNameTemplate": map[string]any{"template": "${source.login}", "type": "BUILT_IN"}}
	switch a.SignOnMode {
	case "AUTO_LOGIN", "BASIC_AUTH", "BROWSER_PLUGIN", "SECURE_PASSWORD_STORE":
		c["scheme"] = "EDIT_USERNAME_AND_PASSWORD"
		c["revealPassword"] = false
		c["signing"] = map[string]any{}
	case "OPENID_CONNECT":
		c["oauthClient"] = map[string]any{
			"autoKeyRotation": true, "client_id": a.ID, "token_endpoint_auth_method": "client_secret_basic",
		}
	case "SAML_2_0", "SAML_1_1", "WS_FEDERATION":
		c["signing"] = map[string]any{"kid": "sim-" + a.ID}
	}
	return c
}

// appSettings are the settings of each signOnMode, with the fields the
// spec requires of it; URLs point at an example tenant of the app.
func appSettings(a *App) map[string]any {
	site := "https://" + a.Name + ".example.com"
	app := map[string]any{}
	s := map[string]any{
		"app":                app,
		"implicitAssignment": false,
		"notifications":      map[string]any{"vpn": map[string]any{"network": map[string]any{"connection": "DISABLED"}}},
	}
	switch a.SignOnMode {
	case "BOOKMARK":
		app["url"], app["requestIntegration"] = site+"/", false
	case "BASIC_AUTH":
		app["url"], app["authURL"] = site+"/", site+"/login"
	case "SECURE_PASSWORD_STORE":
		app["url"], app["usernameField"], app["passwordField"] = site+"/login", "username", "password"
	case "BROWSER_PLUGIN":
		app["url"], app["usernameField"], app["passwordField"], app["buttonField"] = site+"/login", "#username", "#password", "#submit"
	case "WS_FEDERATION":
		app["audienceRestriction"], app["siteURL"], app["wReplyURL"] = site, site, site+"/wsfed"
		app["groupValueFormat"], app["usernameAttribute"] = "windowsDomainQualifiedName", "username"
		app["nameIDFormat"] = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
		app["authnContextClassRef"] = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	case "AUTO_LOGIN":
		s["signOn"] = map[string]any{"loginUrl": site + "/login", "redirectUrl": site + "/"}
	case "SAML_2_0":
		s["signOn"] = map[string]any{
			"ssoAcsUrl": site + "/saml/acs", "audience": site, "recipient": site + "/saml/acs", "destination": site + "/saml/acs",
			"subjectNameIdTemplate": "${user.userName}", "subjectNameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			"responseSigned": true, "assertionSigned": true, "signatureAlgorithm": "RSA_SHA256", "digestAlgorithm": "SHA256",
			"honorForceAuthn": true, "requestCompressed": false, "allowMultipleAcsEndpoints": false,
			"acsEndpoints": []any{}, "attributeStatements": []any{},
		}
	case "OPENID_CONNECT":
		s["oauthClient"] = map[string]any{
			"application_type": "web", "grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
			"redirect_uris": []string{site + "/oauth2/callback"}, "consent_method": "REQUIRED", "issuer_mode": "DYNAMIC",
		}
	}
	return s
}
