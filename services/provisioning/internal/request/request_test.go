package request_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"

	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

func valid() *eventsv1.ProvisioningRequest {
	return &eventsv1.ProvisioningRequest{
		RequestId: "ticket-1", ConnectorId: "okta", Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT,
		RequestedBy: "alice", Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
			GroupMembership: &eventsv1.GroupMembershipTarget{UserId: "00u1", GroupId: "00g1"}}},
	}
}

func appTarget(app, user, group string, profile map[string]any) *eventsv1.ProvisioningTarget {
	aa := &eventsv1.AppAssignmentTarget{AppId: app}
	if user != "" {
		aa.Assignee = &eventsv1.AppAssignmentTarget_UserId{UserId: user}
	}
	if group != "" {
		aa.Assignee = &eventsv1.AppAssignmentTarget_GroupId{GroupId: group}
	}
	if profile != nil {
		aa.Profile, _ = structpb.NewStruct(profile)
	}
	return &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{AppAssignment: aa}}
}

// TestValidate: each kind of mistake names its field and says what to do;
// valid requests pass.
func TestValidate(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		change func(r *eventsv1.ProvisioningRequest)
		field  string
		reason string
	}{
		{"valid membership", func(*eventsv1.ProvisioningRequest) {}, "", ""},
		{"valid app user with profile and duration", func(r *eventsv1.ProvisioningRequest) {
			r.Target = appTarget("0oa1", "00u1", "", map[string]any{"role": "admin"})
			r.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(2 * time.Hour)}
		}, "", ""},
		{"valid app group revoke", func(r *eventsv1.ProvisioningRequest) {
			r.Action = eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE
			r.Target = appTarget("0oa1", "", "00g1", nil)
		}, "", ""},
		{"no request id", func(r *eventsv1.ProvisioningRequest) { r.RequestId = "" }, "request_id", "required"},
		{"long request id", func(r *eventsv1.ProvisioningRequest) { r.RequestId = strings.Repeat("x", 257) }, "request_id", "too long"},
		{"control char in id", func(r *eventsv1.ProvisioningRequest) { r.RequestId = "a\nb" }, "request_id", "printable"},
		{"bad connector", func(r *eventsv1.ProvisioningRequest) { r.ConnectorId = "Okta Prod" }, "connector_id", "lower case"},
		{"no connector", func(r *eventsv1.ProvisioningRequest) { r.ConnectorId = "" }, "connector_id", "empty"},
		{"no action", func(r *eventsv1.ProvisioningRequest) { r.Action = 0 }, "action", "GRANT or REVOKE"},
		{"no requester", func(r *eventsv1.ProvisioningRequest) { r.RequestedBy = "" }, "requested_by", "who asks"},
		{"no target", func(r *eventsv1.ProvisioningRequest) { r.Target = nil }, "target", "required"},
		{"no user", func(r *eventsv1.ProvisioningRequest) { r.Target.GetGroupMembership().UserId = "" }, "target.group_membership.user_id", "00u"},
		{"bad group id", func(r *eventsv1.ProvisioningRequest) { r.Target.GetGroupMembership().GroupId = "00g/../x" }, "target.group_membership.group_id", "not an Okta group id"},
		{"no app", func(r *eventsv1.ProvisioningRequest) { r.Target = appTarget("", "00u1", "", nil) }, "target.app_assignment.app_id", "0oa"},
		{"no assignee", func(r *eventsv1.ProvisioningRequest) { r.Target = appTarget("0oa1", "", "", nil) }, "target.app_assignment.assignee", "user_id or group_id"},
		{"credential in profile", func(r *eventsv1.ProvisioningRequest) {
			r.Target = appTarget("0oa1", "00u1", "", map[string]any{"userPassword": "x"})
		}, "target.app_assignment.profile.userPassword", "credentials"},
		{"expiry in the past", func(r *eventsv1.ProvisioningRequest) {
			r.Expiry = &eventsv1.ProvisioningRequest_ExpiresAt{ExpiresAt: timestamppb.New(now.Add(-time.Minute))}
		}, "expires_at", "in the past"},
		{"expiry too far", func(r *eventsv1.ProvisioningRequest) {
			r.Expiry = &eventsv1.ProvisioningRequest_ExpiresAt{ExpiresAt: timestamppb.New(now.Add(400 * 24 * time.Hour))}
		}, "expires_at", "days ahead"},
		{"zero duration", func(r *eventsv1.ProvisioningRequest) {
			r.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(0)}
		}, "duration", "between"},
	}
	for _, c := range cases {
		r := valid()
		c.change(r)
		errs := request.Validate(r, now)
		if c.field == "" {
			if len(errs) > 0 {
				t.Errorf("%s: %v", c.name, errs)
			}
			continue
		}
		if len(errs) != 1 || errs[0].GetField() != c.field || !strings.Contains(errs[0].GetReason(), c.reason) {
			t.Errorf("%s: got %v, want one error on %s saying %q", c.name, errs, c.field, c.reason)
		}
	}
	// Several mistakes: one error each.
	if errs := request.Validate(&eventsv1.ProvisioningRequest{}, now); len(errs) != 5 {
		t.Errorf("empty request: %d errors %v, want 5 (id, connector, action, requester, target)", len(errs), errs)
	}
	// A revoke ignores expiry and profile.
	r := valid()
	r.Action = eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE
	r.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(0)}
	if errs := request.Validate(r, now); len(errs) != 0 {
		t.Errorf("revoke with an expiry: %v", errs)
	}
}

func TestGrantKeyAndMsgID(t *testing.T) {
	r := valid()
	if k := request.GrantKey(r.GetTarget()); k != "group_membership/00g1/00u1" {
		t.Errorf("membership key %q", k)
	}
	if k := request.GrantKey(appTarget("0oa1", "00u1", "", nil)); k != "app_assignment/0oa1/user/00u1" {
		t.Errorf("app user key %q", k)
	}
	if k := request.GrantKey(appTarget("0oa1", "", "00g1", nil)); k != "app_assignment/0oa1/group/00g1" {
		t.Errorf("app group key %q", k)
	}
	other := proto.CloneOf(r)
	other.Reason = "another reason"
	if request.MsgID(r) != request.MsgID(other) {
		t.Error("the message id depends on more than the request id")
	}
	other.RequestId = "ticket-2"
	if request.MsgID(r) == request.MsgID(other) {
		t.Error("two request ids share a message id")
	}
}
