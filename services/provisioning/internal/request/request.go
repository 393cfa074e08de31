// Package request holds the provisioning request contract that both the
// work-queue consumer and the API apply: validation with a reason per
// field, the grant key a request is about, and the request's message id.
package request

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Limits of the contract.
const (
	// MaxRequestIDLen is the longest request_id, in bytes.
	MaxRequestIDLen = 256
	// MinDuration and MaxDuration bound a grant's lifetime.
	MinDuration = time.Second
	MaxDuration = 366 * 24 * time.Hour
)

// credentialWords are profile attribute names that suggest a credential,
// which a provisioning request must never carry.
var credentialWords = []string{"password", "secret", "credential", "token", "apikey", "api_key", "privatekey", "private_key"}

// Validate returns what is wrong with req, one FieldError per field; nil
// when it is valid. now is the time expires_at must be after.
func Validate(req *eventsv1.ProvisioningRequest, now time.Time) []*eventsv1.FieldError {
	var errs []*eventsv1.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, &eventsv1.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	switch id := req.GetRequestId(); {
	case id == "":
		add("request_id", "required: an idempotency key you choose, unique per change (such as a ticket id and a step)")
	case len(id) > MaxRequestIDLen:
		add("request_id", "too long: at most %d bytes, got %d", MaxRequestIDLen, len(id))
	case strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		add("request_id", "must hold printable characters only")
	}
	if err := subjects.ValidateConnectorID(req.GetConnectorId()); err != nil {
		add("connector_id", "%s", strings.TrimPrefix(err.Error(), subjects.ErrInvalidConnectorID.Error()+": "))
	}
	switch req.GetAction() {
	case eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT, eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE:
	default:
		add("action", "required: GRANT or REVOKE")
	}
	if req.GetRequestedBy() == "" {
		add("requested_by", "required: who asks (a platform identity or the calling system), for the audit trail")
	}
	oktaID := func(field, what, prefix, v string) {
		switch {
		case v == "":
			add(field, "required: the Okta %s id (%s...)", what, prefix)
		case strings.IndexFunc(v, func(r rune) bool { return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) }) >= 0:
			add(field, "not an Okta %s id: letters and digits only, such as %s...", what, prefix)
		}
	}
	t := req.GetTarget()
	switch {
	case t.GetGroupMembership() != nil:
		gm := t.GetGroupMembership()
		oktaID("target.group_membership.user_id", "user", "00u", gm.GetUserId())
		oktaID("target.group_membership.group_id", "group", "00g", gm.GetGroupId())
	case t.GetAppAssignment() != nil:
		aa := t.GetAppAssignment()
		oktaID("target.app_assignment.app_id", "app", "0oa", aa.GetAppId())
		switch {
		case aa.GetUserId() != "":
			oktaID("target.app_assignment.user_id", "user", "00u", aa.GetUserId())
		case aa.GetGroupId() != "":
			oktaID("target.app_assignment.group_id", "group", "00g", aa.GetGroupId())
		default:
			add("target.app_assignment.assignee", "required: user_id or group_id, who is assigned")
		}
		if req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT {
			for k := range aa.GetProfile().GetFields() {
				lk := strings.ToLower(k)
				for _, w := range credentialWords {
					if strings.Contains(lk, w) {
						add("target.app_assignment.profile."+k, "must not hold credentials: set them in Okta, not through accessbus")
						break
					}
				}
			}
		}
	default:
		add("target", "required: group_membership (user_id, group_id) or app_assignment (app_id, user_id or group_id)")
	}
	if req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT {
		switch {
		case req.GetExpiresAt() != nil:
			if err := req.GetExpiresAt().CheckValid(); err != nil {
				add("expires_at", "not a valid time: %v", err)
			} else if at := req.GetExpiresAt().AsTime(); !at.After(now) {
				add("expires_at", "in the past (%s): give a time after now, or a duration", at.UTC().Format(time.RFC3339))
			} else if at.Sub(now) > MaxDuration {
				add("expires_at", "more than %d days ahead: grant without an expiry instead", int(MaxDuration.Hours()/24))
			}
		case req.GetDuration() != nil:
			if err := req.GetDuration().CheckValid(); err != nil {
				add("duration", "not a valid duration: %v", err)
			} else if d := req.GetDuration().AsDuration(); d < MinDuration || d > MaxDuration {
				add("duration", "must be between %s and %d days, got %s", MinDuration, int(MaxDuration.Hours()/24), d)
			}
		}
	}
	return errs
}

// GrantKey is the key of the Grant a target is about, as the sync
// publishes it on ACCESS (Grant.key); "" for an incomplete target.
func GrantKey(t *eventsv1.ProvisioningTarget) string {
	if gm := t.GetGroupMembership(); gm != nil {
		return "group_membership/" + gm.GetGroupId() + "/" + gm.GetUserId()
	}
	if aa := t.GetAppAssignment(); aa != nil {
		if aa.GetUserId() != "" {
			return "app_assignment/" + aa.GetAppId() + "/user/" + aa.GetUserId()
		}
		if aa.GetGroupId() != "" {
			return "app_assignment/" + aa.GetAppId() + "/group/" + aa.GetGroupId()
		}
	}
	return ""
}

// MsgID is the Nats-Msg-Id of a request on provisioning.<connector>.request:
// publishing one request_id twice stores it once.
func MsgID(req *eventsv1.ProvisioningRequest) string {
	return subjects.MsgID(subjects.DomainProvisioning, req.GetConnectorId(), subjects.EntityRequest, req.GetRequestId())
}

// ResultMsgID is the Nats-Msg-Id of a request's result: one per request_id.
func ResultMsgID(connector, requestID string) string {
	return subjects.MsgID(subjects.DomainProvisioning, connector, subjects.EntityResult, requestID)
}

// ExpiryRequester is the requested_by of the revokes that end time-bound
// grants; their request_id is ExpiryRequestID of the grant's request.
const ExpiryRequester = "provisioning:expiry"

// ExpiryRequestID is the request_id of the revoke that ends the time-bound
// grant made by request grantRequestID.
func ExpiryRequestID(grantRequestID string) string { return "expiry:" + grantRequestID }
