package oktasim

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Okta's object statuses and types used across the simulator.
const (
	GroupOkta    = "OKTA_GROUP"
	GroupApp     = "APP_GROUP"
	GroupBuiltIn = "BUILT_IN"

	ScopeUser  = "USER"
	ScopeGroup = "GROUP"
)

// Org is one simulated Okta org: its objects, the tokens that may call it,
// its System Log and its event hooks. All methods are safe for concurrent
// use; handlers hold mu for reading or writing.
type Org struct {
	mu    sync.RWMutex
	clock *Clock
	base  string // https://host:port, the org URL used in links

	users        *ordered[*User]
	usersByLogin map[string]*User
	groups       *ordered[*Group]
	apps         *ordered[*App]
	// roles holds role assignments by principal ("user/<id>" or "group/<id>").
	roles        map[string]*ordered[*RoleAssignment]
	customRoles  *ordered[*CustomRole]
	resourceSets *ordered[*ResourceSet]
	hooks        *ordered[*EventHook]
	logs         []*LogEvent
	tokens       map[string]string // API token -> admin user id
	ids          map[string]uint64 // id counters per prefix, for deterministic ids
	// everyoneID is the BUILT_IN Everyone group, which every user joins.
	everyoneID string

	// hookOut receives every appended log event for delivery to hooks.
	hookOut func(*LogEvent)
}

// NewOrg returns an empty org served at base (for example
// "http://127.0.0.1:8443"), whose time runs on clock.
func NewOrg(base string, clock *Clock) *Org {
	return &Org{
		clock:        clock,
		base:         base,
		users:        newOrdered[*User](),
		usersByLogin: map[string]*User{},
		groups:       newOrdered[*Group](),
		apps:         newOrdered[*App](),
		roles:        map[string]*ordered[*RoleAssignment]{},
		customRoles:  newOrdered[*CustomRole](),
		resourceSets: newOrdered[*ResourceSet](),
		hooks:        newOrdered[*EventHook](),
		tokens:       map[string]string{},
		ids:          map[string]uint64{},
	}
}

// BaseURL is the org URL.
func (o *Org) BaseURL() string { return o.base }

// Clock is the org's clock.
func (o *Org) Clock() *Clock { return o.clock }

// newID makes the next id with an Okta prefix ("00u", "00g", "0oa", ...):
// 20 characters, deterministic in creation order.
func (o *Org) newID(prefix string) string {
	o.ids[prefix]++
	return fmt.Sprintf("%s%0*x", prefix, 20-len(prefix), o.ids[prefix])
}

// User is an Okta user.
type User struct {
	ID              string
	Status          string
	Created         time.Time
	Activated       time.Time
	StatusChanged   time.Time
	LastLogin       time.Time
	LastUpdated     time.Time
	PasswordChanged time.Time
	Profile         UserProfile
	// groups are the ids of the groups the user is a member of.
	groups map[string]struct{}
	raw    []byte
}

// UserProfile holds the profile attributes governance needs.
type UserProfile struct {
	Login          string `json:"login"`
	Email          string `json:"email"`
	FirstName      string `json:"firstName"`
	LastName       string `json:"lastName"`
	DisplayName    string `json:"displayName,omitempty"`
	Department     string `json:"department,omitempty"`
	Title          string `json:"title,omitempty"`
	ManagerID      string `json:"managerId,omitempty"`
	EmployeeNumber string `json:"employeeNumber,omitempty"`
	UserType       string `json:"userType,omitempty"`
}

// Group is an Okta group.
type Group struct {
	ID                    string
	Type                  string
	Name                  string
	Description           string
	Created               time.Time
	LastUpdated           time.Time
	LastMembershipUpdated time.Time
	// SourceAppID is the app that pushes an APP_GROUP.
	SourceAppID string
	members     *ordered[*User]
	// apps are the ids of apps the group is assigned to.
	apps map[string]struct{}
	raw  []byte
}

// App is an Okta application instance.
type App struct {
	ID          string
	Name        string
	Label       string
	Status      string
	SignOnMode  string
	Features    []string
	Created     time.Time
	LastUpdated time.Time
	// Connection is the provisioning connection; nil when the app has none.
	Connection *AppConnection
	users      *ordered[*AppUser]
	groups     *ordered[*AppGroup]
	raw        []byte
}

// AppConnection is an app's default provisioning connection.
type AppConnection struct {
	Status     string
	AuthScheme string
}

// AppUser is a user's assignment to an app, direct (scope USER) or through
// one or more assigned groups (scope GROUP).
type AppUser struct {
	UserID      string
	Scope       string
	Status      string
	SyncState   string
	Created     time.Time
	LastUpdated time.Time
	Profile     map[string]any
	// Direct is set when the user is assigned directly; ViaGroups lists the
	// assigned groups the user is a member of.
	Direct    bool
	ViaGroups map[string]struct{}
	raw       []byte
}

// AppGroup is a group's assignment to an app.
type AppGroup struct {
	GroupID     string
	Priority    int
	Profile     map[string]any
	LastUpdated time.Time
	raw         []byte
}

// RoleAssignment is an admin role assigned to a user or a group.
type RoleAssignment struct {
	ID             string
	Type           string // SUPER_ADMIN, ..., CUSTOM
	Label          string
	Status         string
	Created        time.Time
	LastUpdated    time.Time
	AssignmentType string // USER or GROUP
	PrincipalID    string
	// CustomRoleID and ResourceSetID are set for CUSTOM assignments.
	CustomRoleID  string
	ResourceSetID string
}

// CustomRole is an IAM custom admin role.
type CustomRole struct {
	ID          string
	Label       string
	Description string
	Permissions []string
	Created     time.Time
	LastUpdated time.Time
}

// ResourceSet is an IAM resource set with its bindings: for each role, the
// members (users or groups, by href) bound to it on this set.
type ResourceSet struct {
	ID          string
	Label       string
	Description string
	Resources   *ordered[*Resource]
	Created     time.Time
	LastUpdated time.Time
	Bindings    *ordered[*Binding]
}

// Resource is one resource of a resource set.
type Resource struct {
	ID      string
	ORN     string
	Href    string
	Created time.Time
}

// Binding binds a role to members on a resource set.
type Binding struct {
	RoleID  string
	Members *ordered[*BindingMember]
}

// BindingMember is a user or group bound in a Binding.
type BindingMember struct {
	ID          string
	Href        string
	Created     time.Time
	LastUpdated time.Time
}

// EventHook is a registered event hook.
type EventHook struct {
	ID                 string
	Name               string
	Status             string // ACTIVE or INACTIVE
	VerificationStatus string // UNVERIFIED or VERIFIED
	Events             []string
	URI                string
	Headers            []HookHeader
	AuthHeaderKey      string
	AuthHeaderValue    string // write-only: never rendered
	Created            time.Time
	LastUpdated        time.Time
}

// HookHeader is an extra header Okta sends with each delivery.
type HookHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// LogEvent is a System Log event.
type LogEvent struct {
	UUID           string
	Published      time.Time
	EventType      string
	DisplayMessage string
	Severity       string
	Actor          LogActor
	Outcome        string
	Targets        []LogActor
	seq            uint64
	raw            []byte
}

// LogActor is an actor or a target of a log event.
type LogActor struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// oktaTime renders a time as Okta does, or null when zero.
type oktaTime time.Time

func (t oktaTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

// render marshals one of our view structs. They hold only strings, numbers,
// times and JSON-decoded maps, so marshalling cannot fail; if it ever did,
// the object would show the error instead of silently going missing.
func render(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Appendf(nil, `{"errorSummary":%q}`, "oktasim could not render this object: "+err.Error())
	}
	return b
}
