package okta

import (
	"path"
	"time"
)

// User is an Okta user with the profile fields governance needs.
type User struct {
	ID             string
	Status         string // STAGED, PROVISIONED, ACTIVE, RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT, SUSPENDED, DEPROVISIONED
	Login          string
	Email          string
	FirstName      string
	LastName       string
	DisplayName    string
	Department     string
	Title          string
	ManagerID      string
	EmployeeNumber string
	UserType       string
	Created        time.Time
	Activated      time.Time
	StatusChanged  time.Time
	LastLogin      time.Time
	LastUpdated    time.Time
}

// Group is an Okta group.
type Group struct {
	ID                    string
	Type                  string // OKTA_GROUP, APP_GROUP, BUILT_IN
	Name                  string
	Description           string
	Created               time.Time
	LastUpdated           time.Time
	LastMembershipUpdated time.Time
	// UsersCount and AppsCount are set only when listed with ExpandStats.
	UsersCount *int64
	AppsCount  *int64
	// SourceAppID is the app an APP_GROUP is imported from.
	SourceAppID string
}

// App is an Okta application instance.
type App struct {
	ID          string
	Name        string
	Label       string
	Status      string // ACTIVE, INACTIVE
	SignOnMode  string
	Features    []string
	Created     time.Time
	LastUpdated time.Time
}

// AppUser is a user's assignment to an app.
type AppUser struct {
	UserID    string
	Scope     string // USER (direct) or GROUP (through a group)
	Status    string
	SyncState string
	// GroupID is the group Okta names as the source of a GROUP-scoped
	// assignment, if any.
	GroupID     string
	Profile     map[string]any
	Created     time.Time
	LastUpdated time.Time
}

// AppGroup is a group's assignment to an app.
type AppGroup struct {
	GroupID     string
	Priority    int
	Profile     map[string]any
	LastUpdated time.Time
}

// RoleAssignment is an admin role assigned to a user or a group.
type RoleAssignment struct {
	ID             string
	Type           string // SUPER_ADMIN, ..., CUSTOM
	Label          string
	Status         string
	AssignmentType string // USER or GROUP
	// CustomRoleID and ResourceSetID are set for CUSTOM roles.
	CustomRoleID  string
	ResourceSetID string
	Created       time.Time
	LastUpdated   time.Time
}

// CustomRole is a custom admin role (/api/v1/iam/roles).
type CustomRole struct {
	ID          string
	Label       string
	Description string
	Created     time.Time
	LastUpdated time.Time
}

// Permission is one permission of a custom role, such as okta.users.read.
type Permission struct {
	Label       string
	Created     time.Time
	LastUpdated time.Time
}

// ResourceSet is a set of resources custom roles are bound on.
type ResourceSet struct {
	ID          string
	Label       string
	Description string
	Created     time.Time
	LastUpdated time.Time
}

// Resource is one resource of a resource set.
type Resource struct {
	ID   string
	ORN  string
	Href string
}

// Binding binds a custom role on a resource set; its members are listed
// with ListBindingMembers.
type Binding struct {
	RoleID string
}

// BindingMember is a user or group a binding applies to.
type BindingMember struct {
	ID   string
	Href string // the member's API URL: /api/v1/users/{id} or /api/v1/groups/{id}
}

type href struct {
	Href string `json:"href"`
}

// lastSegment is the id at the end of an href, or "".
func lastSegment(h *href) string {
	if h == nil || h.Href == "" {
		return ""
	}
	return path.Base(h.Href)
}

type wireUser struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	Created       time.Time `json:"created"`
	Activated     time.Time `json:"activated"`
	StatusChanged time.Time `json:"statusChanged"`
	LastLogin     time.Time `json:"lastLogin"`
	LastUpdated   time.Time `json:"lastUpdated"`
	Profile       struct {
		Login          string `json:"login"`
		Email          string `json:"email"`
		FirstName      string `json:"firstName"`
		LastName       string `json:"lastName"`
		DisplayName    string `json:"displayName"`
		Department     string `json:"department"`
		Title          string `json:"title"`
		ManagerID      string `json:"managerId"`
		EmployeeNumber string `json:"employeeNumber"`
		UserType       string `json:"userType"`
	} `json:"profile"`
}

func (w wireUser) user() User {
	p := w.Profile
	return User{
		ID: w.ID, Status: w.Status, Login: p.Login, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName,
		DisplayName: p.DisplayName, Department: p.Department, Title: p.Title, ManagerID: p.ManagerID,
		EmployeeNumber: p.EmployeeNumber, UserType: p.UserType, Created: w.Created, Activated: w.Activated,
		StatusChanged: w.StatusChanged, LastLogin: w.LastLogin, LastUpdated: w.LastUpdated,
	}
}

type wireGroup struct {
	ID                    string    `json:"id"`
	Type                  string    `json:"type"`
	Created               time.Time `json:"created"`
	LastUpdated           time.Time `json:"lastUpdated"`
	LastMembershipUpdated time.Time `json:"lastMembershipUpdated"`
	Profile               struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"profile"`
	Embedded struct {
		Stats *struct {
			UsersCount *int64 `json:"usersCount"`
			AppsCount  *int64 `json:"appsCount"`
		} `json:"stats"`
	} `json:"_embedded"`
	Links struct {
		Source *href `json:"source"`
	} `json:"_links"`
}

func (w wireGroup) group() Group {
	g := Group{
		ID: w.ID, Type: w.Type, Name: w.Profile.Name, Description: w.Profile.Description, Created: w.Created,
		LastUpdated: w.LastUpdated, LastMembershipUpdated: w.LastMembershipUpdated, SourceAppID: lastSegment(w.Links.Source),
	}
	if s := w.Embedded.Stats; s != nil {
		g.UsersCount, g.AppsCount = s.UsersCount, s.AppsCount
	}
	return g
}

type wireApp struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Label       string    `json:"label"`
	Status      string    `json:"status"`
	SignOnMode  string    `json:"signOnMode"`
	Features    []string  `json:"features"`
	Created     time.Time `json:"created"`
	LastUpdated time.Time `json:"lastUpdated"`
}

func (w wireApp) app() App {
	return App{ID: w.ID, Name: w.Name, Label: w.Label, Status: w.Status, SignOnMode: w.SignOnMode,
		Features: w.Features, Created: w.Created, LastUpdated: w.LastUpdated}
}

type wireAppUser struct {
	ID          string         `json:"id"`
	Scope       string         `json:"scope"`
	Status      string         `json:"status"`
	SyncState   string         `json:"syncState"`
	Profile     map[string]any `json:"profile"`
	Created     time.Time      `json:"created"`
	LastUpdated time.Time      `json:"lastUpdated"`
	Links       struct {
		Group *href `json:"group"`
	} `json:"_links"`
}

func (w wireAppUser) appUser() AppUser {
	return AppUser{UserID: w.ID, Scope: w.Scope, Status: w.Status, SyncState: w.SyncState,
		GroupID: lastSegment(w.Links.Group), Profile: w.Profile, Created: w.Created, LastUpdated: w.LastUpdated}
}

type wireAppGroup struct {
	ID          string         `json:"id"`
	Priority    int            `json:"priority"`
	Profile     map[string]any `json:"profile"`
	LastUpdated time.Time      `json:"lastUpdated"`
}

func (w wireAppGroup) appGroup() AppGroup {
	return AppGroup{GroupID: w.ID, Priority: w.Priority, Profile: w.Profile, LastUpdated: w.LastUpdated}
}

type wireRole struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	Label          string    `json:"label"`
	Status         string    `json:"status"`
	AssignmentType string    `json:"assignmentType"`
	Role           string    `json:"role"`
	ResourceSet    string    `json:"resource-set"`
	Created        time.Time `json:"created"`
	LastUpdated    time.Time `json:"lastUpdated"`
}

func (w wireRole) role() RoleAssignment {
	r := RoleAssignment{ID: w.ID, Type: w.Type, Label: w.Label, Status: w.Status, AssignmentType: w.AssignmentType,
		Created: w.Created, LastUpdated: w.LastUpdated}
	if w.Type == "CUSTOM" {
		r.CustomRoleID, r.ResourceSetID = w.Role, w.ResourceSet
	}
	return r
}

type wireCustomRole struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	LastUpdated time.Time `json:"lastUpdated"`
}

func (w wireCustomRole) customRole() CustomRole {
	return CustomRole(w)
}

type wirePermission struct {
	Label       string    `json:"label"`
	Created     time.Time `json:"created"`
	LastUpdated time.Time `json:"lastUpdated"`
}

func (w wirePermission) permission() Permission { return Permission(w) }

type wireResourceSet struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	LastUpdated time.Time `json:"lastUpdated"`
}

func (w wireResourceSet) resourceSet() ResourceSet { return ResourceSet(w) }

type wireResource struct {
	ID    string `json:"id"`
	ORN   string `json:"orn"`
	Links struct {
		Self *href `json:"self"`
	} `json:"_links"`
}

func (w wireResource) resource() Resource {
	r := Resource{ID: w.ID, ORN: w.ORN}
	if w.Links.Self != nil {
		r.Href = w.Links.Self.Href
	}
	return r
}

type wireBinding struct {
	ID string `json:"id"`
}

func (w wireBinding) binding() Binding { return Binding{RoleID: w.ID} }

type wireBindingMember struct {
	ID    string `json:"id"`
	Links struct {
		Self *href `json:"self"`
	} `json:"_links"`
}

func (w wireBindingMember) member() BindingMember {
	m := BindingMember{ID: w.ID}
	if w.Links.Self != nil {
		m.Href = w.Links.Self.Href
	}
	return m
}
