package fullsync

import (
	"slices"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ts is t as a Timestamp; a zero time (Okta's null) is unset.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// enum looks an Okta value up in a proto enum's value map; unknown values
// are UNSPECIFIED (0), as the events package's conventions say.
func enum(values map[string]int32, prefix, v string) int32 {
	if v == "" {
		return 0
	}
	return values[prefix+v]
}

func userResource(u okta.User) *eventsv1.Resource {
	return &eventsv1.Resource{Resource: &eventsv1.Resource_User{User: &eventsv1.User{
		Id:             u.ID,
		Status:         eventsv1.User_Status(enum(eventsv1.User_Status_value, "STATUS_", u.Status)),
		Login:          u.Login,
		Email:          u.Email,
		FirstName:      u.FirstName,
		LastName:       u.LastName,
		DisplayName:    u.DisplayName,
		Department:     u.Department,
		Title:          u.Title,
		ManagerId:      u.ManagerID,
		EmployeeNumber: u.EmployeeNumber,
		UserType:       u.UserType,
		Created:        ts(u.Created),
		Activated:      ts(u.Activated),
		StatusChanged:  ts(u.StatusChanged),
		LastLogin:      ts(u.LastLogin),
		LastUpdated:    ts(u.LastUpdated),
	}}}
}

func groupResource(g okta.Group) *eventsv1.Resource {
	return &eventsv1.Resource{Resource: &eventsv1.Resource_Group{Group: &eventsv1.Group{
		Id:                    g.ID,
		Type:                  eventsv1.Group_Type(enum(eventsv1.Group_Type_value, "TYPE_", g.Type)),
		Name:                  g.Name,
		Description:           g.Description,
		Created:               ts(g.Created),
		LastUpdated:           ts(g.LastUpdated),
		LastMembershipUpdated: ts(g.LastMembershipUpdated),
		UsersCount:            g.UsersCount,
		AppsCount:             g.AppsCount,
		SourceAppId:           g.SourceAppID,
	}}}
}

func appResource(a okta.App) *eventsv1.Resource {
	return &eventsv1.Resource{Resource: &eventsv1.Resource_App{App: &eventsv1.App{
		Id:          a.ID,
		Name:        a.Name,
		Label:       a.Label,
		Status:      eventsv1.App_Status(enum(eventsv1.App_Status_value, "STATUS_", a.Status)),
		SignOnMode:  eventsv1.SignOnMode(enum(eventsv1.SignOnMode_value, "SIGN_ON_MODE_", a.SignOnMode)),
		Features:    a.Features,
		Created:     ts(a.Created),
		LastUpdated: ts(a.LastUpdated),
		// The provisioning connection is not read by this slice; features
		// alone decide.
		ScimProvisioned: slices.Contains(a.Features, "SCIM_PROVISIONING"),
	}}}
}

func standardRoleResource(typ, label string) *eventsv1.Resource {
	return &eventsv1.Resource{Resource: &eventsv1.Resource_StandardRole{StandardRole: &eventsv1.StandardRole{Type: typ, Label: label}}}
}

// profile is an assignment profile as a Struct; nil when empty or when it
// holds a value a Struct cannot (then it is left out rather than failing
// the run).
func profile(p map[string]any) *structpb.Struct {
	if len(p) == 0 {
		return nil
	}
	s, err := structpb.NewStruct(p)
	if err != nil {
		return nil
	}
	return s
}

func appUserGrant(appID string, au okta.AppUser, via []string) *eventsv1.Grant {
	return &eventsv1.Grant{
		Key:       "app_assignment/" + appID + "/user/" + au.UserID,
		Principal: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: au.UserID},
		Entitlement: &eventsv1.Grant_AppAssignment{AppAssignment: &eventsv1.AppAssignment{
			AppId:       appID,
			Scope:       eventsv1.AppAssignment_Scope(enum(eventsv1.AppAssignment_Scope_value, "SCOPE_", au.Scope)),
			ViaGroupIds: via,
			Profile:     profile(au.Profile),
			SyncState:   eventsv1.AppAssignment_SyncState(enum(eventsv1.AppAssignment_SyncState_value, "SYNC_STATE_", au.SyncState)),
			Status:      au.Status,
			LastUpdated: ts(au.LastUpdated),
		}},
	}
}

func appGroupGrant(appID string, ag okta.AppGroup) *eventsv1.Grant {
	return &eventsv1.Grant{
		Key:       "app_assignment/" + appID + "/group/" + ag.GroupID,
		Principal: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: ag.GroupID},
		Entitlement: &eventsv1.Grant_AppAssignment{AppAssignment: &eventsv1.AppAssignment{
			AppId:       appID,
			Profile:     profile(ag.Profile),
			Priority:    int32(ag.Priority),
			LastUpdated: ts(ag.LastUpdated),
		}},
	}
}

// roleGrant is a role assignment of a user or group; principal is "user"
// or "group".
func roleGrant(principal, id string, r okta.RoleAssignment) *eventsv1.Grant {
	pt := eventsv1.PrincipalType_PRINCIPAL_TYPE_USER
	if principal == "group" {
		pt = eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP
	}
	at := "user"
	if r.AssignmentType == "GROUP" {
		at = "group"
	}
	key := "role_assignment/" + principal + "/" + id + "/" + at + "/" + r.Type
	if r.Type == "CUSTOM" {
		key += "/" + r.CustomRoleID + "/" + r.ResourceSetID
	}
	return &eventsv1.Grant{
		Key:       key,
		Principal: &eventsv1.Principal{Type: pt, Id: id},
		Entitlement: &eventsv1.Grant_RoleAssignment{RoleAssignment: &eventsv1.RoleAssignment{
			AssignmentId:   r.ID,
			RoleType:       r.Type,
			Label:          r.Label,
			CustomRoleId:   r.CustomRoleID,
			ResourceSetId:  r.ResourceSetID,
			AssignmentType: eventsv1.RoleAssignment_AssignmentType(enum(eventsv1.RoleAssignment_AssignmentType_value, "ASSIGNMENT_TYPE_", r.AssignmentType)),
			Status:         eventsv1.RoleAssignment_Status(enum(eventsv1.RoleAssignment_Status_value, "STATUS_", r.Status)),
		}},
	}
}

func customRoleResource(cr okta.CustomRole, perms []string) *eventsv1.Resource {
	return &eventsv1.Resource{Resource: &eventsv1.Resource_CustomRole{CustomRole: &eventsv1.CustomRole{
		Id: cr.ID, Label: cr.Label, Description: cr.Description, Permissions: perms,
		Created: ts(cr.Created), LastUpdated: ts(cr.LastUpdated),
	}}}
}

func resourceSetResource(rs okta.ResourceSet, resources []string) *eventsv1.Resource {
	return &eventsv1.Resource{Resource: &eventsv1.Resource_ResourceSet{ResourceSet: &eventsv1.ResourceSet{
		Id: rs.ID, Label: rs.Label, Description: rs.Description, Resources: resources,
		Created: ts(rs.Created), LastUpdated: ts(rs.LastUpdated),
	}}}
}
