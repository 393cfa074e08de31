package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1/provisioningv1connect"
)

// maxWaitTimeout is the longest wait the ProvisioningService accepts.
const maxWaitTimeout = 5 * time.Minute

// provisionOptions are the flags every `accessbus provision` command shares.
type provisionOptions struct {
	server, connector, dataDir string
	json                       bool
}

func (o *provisionOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.server, "server", defaultServer, "base URL of the accessbus HTTP API")
	f.StringVar(&o.connector, "connector", "", "connector id (required)")
	dataDirFlag(cmd, &o.dataDir)
	f.BoolVar(&o.json, "json", false, "print the API's answer as JSON lines")
	_ = cmd.MarkFlagRequired("connector")
}

// client calls the ProvisioningService with the caller's API key.
func (o *provisionOptions) client() provisioningv1connect.ProvisioningServiceClient {
	return provisioningv1connect.NewProvisioningServiceClient(&http.Client{}, strings.TrimRight(o.server, "/"), apiKeyOption(o.dataDir))
}

func newProvisionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Grant and revoke Okta group memberships and app assignments, also for a limited time",
		Long: `Talks to the ProvisioningService of a running accessbus (--server, default the
local accessbus dev) with your API key (ACCESSBUS_API_KEY, else accessbus dev's
<data-dir>/admin-api-key). Anyone with a key reads (status, list); grant and
revoke take an owner of the connector (Connector Administrator) or a Super
Administrator. A request is published on provisioning.<connector>.request,
like one from any other system, and carried out in Okta once: the connector's
token must have the Okta role for it. docs/provisioning.md describes the contract.`,
	}
	cmd.AddCommand(newProvisionChangeCmd(eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT),
		newProvisionChangeCmd(eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE),
		newProvisionStatusCmd(), newProvisionListCmd())
	return cmd
}

// changeOptions are the flags of `accessbus provision grant|revoke`.
type changeOptions struct {
	provisionOptions
	group, app, user, assigneeGroup string
	forDur, until                   string
	reason, requestID, requestedBy  string
	profileJSON                     string
	noWait                          bool
	waitTimeout                     time.Duration
}

func newProvisionChangeCmd(action eventsv1.ProvisioningAction) *cobra.Command {
	o := changeOptions{}
	verb := lowerName(action.String(), "PROVISIONING_ACTION_")
	cmd := &cobra.Command{
		Use:   verb + " --connector C (--group G | --app A) (--user U | --assignee-group G)",
		Short: map[string]string{"grant": "Add a user to a group, or assign a user or a group to an app", "revoke": "Remove a user from a group, or unassign a user or a group from an app"}[verb],
		Long: `--group G --user U is a group membership; --app A with --user U or
--assignee-group G is an app assignment. Ids are Okta ids (00u..., 00g..., 0oa...).
The command waits for the result (--wait-timeout, default 30s) and exits non-zero
when the request failed or the wait ran out; --no-wait only submits it.
--request-id is the idempotency key: submitting it again changes nothing and
answers the first request's outcome (default: a new random id, printed).`,
		Example: "  accessbus provision grant --connector okta --group 00g1 --user 00u1 --for 8h --reason 'INC-42 on-call'\n" +
			"  accessbus provision revoke --connector okta --app 0oa1 --assignee-group 00g2",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := o.request(action, time.Now())
			if err != nil {
				return err
			}
			if !o.noWait && (o.waitTimeout <= 0 || o.waitTimeout > maxWaitTimeout) {
				return fmt.Errorf("--wait-timeout %s: give more than 0 and at most %s", o.waitTimeout, maxWaitTimeout)
			}
			out := cmd.OutOrStdout()
			if !o.json {
				wait := ""
				if !o.noWait {
					wait = fmt.Sprintf("; waiting up to %s for the result", o.waitTimeout)
				}
				fmt.Fprintf(out, "request %s: %s %s%s\n", req.GetRequestId(), verb, targetWords(req.GetTarget()), wait)
			}
			m := &provv1.SubmitRequest{Request: req, Wait: !o.noWait}
			if !o.noWait {
				m.WaitTimeout = durationpb.New(o.waitTimeout)
			}
			resp, err := o.client().Submit(cmd.Context(), connect.NewRequest(m))
			if err != nil {
				return callError("submit request "+req.GetRequestId(), o.server, err)
			}
			rec := resp.Msg.GetRecord()
			if o.json {
				if err := writeJSONLine(out, rec); err != nil {
					return err
				}
			} else {
				if !sameRequest(rec.GetRequest(), req) {
					fmt.Fprintf(out, "note: request id %s was submitted before; its first request stands and this one changed nothing\n", req.GetRequestId())
				}
				printRecord(out, rec, o.connector)
			}
			return recordError(rec, o.noWait, o.waitTimeout)
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.group, "group", "", "Okta group id: a group membership (with --user)")
	f.StringVar(&o.app, "app", "", "Okta app id: an app assignment (with --user or --assignee-group)")
	f.StringVar(&o.user, "user", "", "Okta user id")
	f.StringVar(&o.assigneeGroup, "assignee-group", "", "Okta group id assigned to --app")
	f.StringVar(&o.reason, "reason", "", "why, for the audit trail (a ticket, an approval)")
	f.StringVar(&o.requestID, "request-id", "", "idempotency key (default a new random id)")
	f.StringVar(&o.requestedBy, "requested-by", "", `who asks (default "cli:$USER")`)
	f.BoolVar(&o.noWait, "no-wait", false, "submit and return without waiting for the result")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 30*time.Second, "how long to wait for the result, at most 5m")
	f.StringVar(&o.forDur, "for", "", "revoke the access by itself after this long (such as 2h, 90m or 7d)")
	f.StringVar(&o.until, "until", "", "revoke the access by itself at this RFC 3339 time (such as 2031-05-06T18:00:00Z)")
	f.StringVar(&o.profileJSON, "profile-json", "", `the app assignment's profile, a JSON object (such as '{"role":"admin"}')`)
	if action == eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE {
		// Known to revoke only to refuse them in words.
		for _, name := range []string{"for", "until", "profile-json"} {
			_ = f.MarkHidden(name)
		}
	}
	return cmd
}

// request builds the request the flags describe, or says what to fix.
func (o *changeOptions) request(action eventsv1.ProvisioningAction, now time.Time) (*eventsv1.ProvisioningRequest, error) {
	req := &eventsv1.ProvisioningRequest{
		RequestId: o.requestID, ConnectorId: o.connector, Action: action,
		RequestedBy: o.requestedBy, Reason: o.reason, SubmittedAt: timestamppb.New(now),
	}
	switch {
	case o.group != "" && o.app != "":
		return nil, errors.New("--group and --app together: a request changes one access, give one of them")
	case o.group == "" && o.app == "":
		return nil, errors.New("say which access: --group G with --user U (a group membership) or --app A with --user U or --assignee-group G (an app assignment)")
	case o.user != "" && o.assigneeGroup != "":
		return nil, errors.New("--user and --assignee-group together: give one assignee")
	case o.group != "" && o.assigneeGroup != "":
		return nil, errors.New("--group with --assignee-group: Okta groups hold users, not groups; use --group with --user, or --app with --assignee-group")
	case o.group != "" && o.user == "":
		return nil, errors.New("--group needs --user U: whose membership")
	case o.app != "" && o.user == "" && o.assigneeGroup == "":
		return nil, errors.New("--app needs --user U or --assignee-group G: who is assigned")
	case o.group != "" && o.profileJSON != "":
		return nil, errors.New("--profile-json is for app assignments (--app), not group memberships")
	case o.forDur != "" && o.until != "":
		return nil, errors.New("--for and --until together: give one")
	case action == eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE && (o.forDur != "" || o.until != ""):
		return nil, errors.New("--for and --until are for grant: a revoke takes effect at once")
	case action == eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE && o.profileJSON != "":
		return nil, errors.New("--profile-json is for grant: a revoke removes the assignment with its profile")
	}
	if o.group != "" {
		req.Target = &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
			GroupMembership: &eventsv1.GroupMembershipTarget{UserId: o.user, GroupId: o.group}}}
	} else {
		aa := &eventsv1.AppAssignmentTarget{AppId: o.app}
		if o.user != "" {
			aa.Assignee = &eventsv1.AppAssignmentTarget_UserId{UserId: o.user}
		} else {
			aa.Assignee = &eventsv1.AppAssignmentTarget_GroupId{GroupId: o.assigneeGroup}
		}
		if o.profileJSON != "" {
			p := &structpb.Struct{}
			if err := p.UnmarshalJSON([]byte(o.profileJSON)); err != nil {
				return nil, fmt.Errorf("--profile-json: not a JSON object: %w", err)
			}
			aa.Profile = p
		}
		req.Target = &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{AppAssignment: aa}}
	}
	switch {
	case o.forDur != "":
		d, err := parseFor(o.forDur)
		if err != nil {
			return nil, err
		}
		req.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(d)}
	case o.until != "":
		t, err := time.Parse(time.RFC3339, o.until)
		if err != nil {
			return nil, fmt.Errorf("--until %q: want an RFC 3339 time such as 2031-05-06T18:00:00Z or 2031-05-06T20:00:00+02:00", o.until)
		}
		if !t.After(now) {
			return nil, fmt.Errorf("--until %s is not in the future", o.until)
		}
		req.Expiry = &eventsv1.ProvisioningRequest_ExpiresAt{ExpiresAt: timestamppb.New(t)}
	}
	if req.RequestId == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		req.RequestId = "cli-" + hex.EncodeToString(b[:])
	}
	if req.RequestedBy == "" {
		req.RequestedBy = "cli"
		if u := os.Getenv("USER"); u != "" {
			req.RequestedBy = "cli:" + u
		}
	}
	return req, nil
}

// parseFor reads --for: a Go duration, or a whole number of days ("7d").
func parseFor(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); err != nil && ok {
		if n, nerr := strconv.Atoi(days); nerr == nil {
			d, err = time.Duration(n)*24*time.Hour, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("--for %q: want a duration such as 2h, 90m or 7d", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("--for %s: give a positive duration", s)
	}
	return d, nil
}

// sameRequest reports whether the stored request is the one just
// submitted (submitted_at aside).
func sameRequest(stored, sent *eventsv1.ProvisioningRequest) bool {
	a, b := proto.CloneOf(stored), proto.CloneOf(sent)
	a.SubmittedAt, b.SubmittedAt = nil, nil
	return proto.Equal(a, b)
}

// recordError is the command's error for a record that did not succeed:
// nil for a success, or for a submission that was not to wait.
func recordError(rec *provv1.RequestRecord, noWait bool, waited time.Duration) error {
	id := rec.GetRequest().GetRequestId()
	if rec.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED {
		if noWait {
			return nil
		}
		return fmt.Errorf("request %s not done within %s", id, waited)
	}
	if rec.GetResult().GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED {
		return fmt.Errorf("request %s failed (%s)", id, reasonWords(rec.GetResult().GetFailureReason()))
	}
	return nil
}

// targetWords names the access of a target: "user U in group G", "group
// G on app A".
func targetWords(t *eventsv1.ProvisioningTarget) string {
	if gm := t.GetGroupMembership(); gm != nil {
		return "user " + gm.GetUserId() + " in group " + gm.GetGroupId()
	}
	who, _ := accessWords(t)
	return who + " on app " + t.GetAppAssignment().GetAppId()
}

// accessWords says who holds the access and what it is: ("user U", "a
// member of group G") or ("group G", "assigned to app A").
func accessWords(t *eventsv1.ProvisioningTarget) (who, what string) {
	if gm := t.GetGroupMembership(); gm != nil {
		return "user " + gm.GetUserId(), "a member of group " + gm.GetGroupId()
	}
	aa := t.GetAppAssignment()
	who = "user " + aa.GetUserId()
	if aa.GetGroupId() != "" {
		who = "group " + aa.GetGroupId()
	}
	return who, "assigned to app " + aa.GetAppId()
}

func reasonWords(r eventsv1.ProvisioningFailureReason) string {
	if s := lowerName(r.String(), "PROVISIONING_FAILURE_REASON_"); s != "" {
		return s
	}
	return "no reason given"
}

func stateWords(rec *provv1.RequestRecord) string {
	switch rec.GetState() {
	case provv1.RequestState_REQUEST_STATE_RECEIVED:
		if rec.GetAttempts() == 0 {
			return "on the queue, not taken yet"
		}
		return fmt.Sprintf("received, checks running (attempt %d)", rec.GetAttempts())
	case provv1.RequestState_REQUEST_STATE_WRITING:
		return fmt.Sprintf("writing to Okta (attempt %d)", rec.GetAttempts())
	case provv1.RequestState_REQUEST_STATE_COMPLETED:
		return "completed"
	}
	return "unknown"
}

// printRecord says in words where a request is and, once completed, how it
// ended.
func printRecord(w io.Writer, rec *provv1.RequestRecord, connector string) {
	req := rec.GetRequest()
	id := req.GetRequestId()
	if rec.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED {
		fmt.Fprintf(w, "request %s is %s; see it with `accessbus provision status --connector %s --request-id %s`\n", id, stateWords(rec), connector, id)
		return
	}
	res := rec.GetResult()
	who, what := accessWords(req.GetTarget())
	grant := req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT
	switch {
	case res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED:
		fmt.Fprintf(w, "failed (%s): %s (request %s)\n", reasonWords(res.GetFailureReason()), res.GetMessage(), id)
		for _, fe := range res.GetFieldErrors() {
			fmt.Fprintf(w, "  %s: %s\n", fe.GetField(), fe.GetReason())
		}
		if res.GetOktaErrorCode() != "" {
			fmt.Fprintf(w, "  Okta error code %s\n", res.GetOktaErrorCode())
		}
		return
	case res.GetNoOp() && grant:
		fmt.Fprintf(w, "already so, nothing written (no-op): %s is %s (request %s)\n", who, what, id)
	case res.GetNoOp():
		fmt.Fprintf(w, "already so, nothing written (no-op): %s is not %s (request %s)\n", who, what, id)
	case grant:
		fmt.Fprintf(w, "granted: %s is now %s (request %s)\n", who, what, id)
	default:
		fmt.Fprintf(w, "revoked: %s is no longer %s (request %s)\n", who, what, id)
	}
	if at := res.GetExpiresAt(); at != nil {
		fmt.Fprintf(w, "expires at %s\n", at.AsTime().Local().Format(time.RFC3339))
	}
}

func newProvisionStatusCmd() *cobra.Command {
	o := provisionOptions{}
	var id string
	cmd := &cobra.Command{
		Use:   "status --connector C --request-id ID",
		Short: "Show where a provisioning request is and how it ended",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().Get(cmd.Context(), connect.NewRequest(&provv1.GetRequest{ConnectorId: o.connector, RequestId: id}))
			if err != nil {
				return callError("request "+id+" of "+o.connector, o.server, err)
			}
			rec := resp.Msg.GetRecord()
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, rec)
			}
			req := rec.GetRequest()
			fmt.Fprintf(out, "request      %s: %s %s\n", id, lowerName(req.GetAction().String(), "PROVISIONING_ACTION_"), targetWords(req.GetTarget()))
			fmt.Fprintf(out, "requested by %s", req.GetRequestedBy())
			if req.GetReason() != "" {
				fmt.Fprintf(out, ": %s", req.GetReason())
			}
			fmt.Fprintln(out)
			switch {
			case req.GetExpiresAt() != nil:
				fmt.Fprintf(out, "expiry       at %s\n", req.GetExpiresAt().AsTime().Local().Format(time.RFC3339))
			case req.GetDuration() != nil:
				fmt.Fprintf(out, "expiry       %s after it is granted\n", req.GetDuration().AsDuration())
			}
			fmt.Fprintf(out, "state        %s\n", stateWords(rec))
			fmt.Fprintf(out, "received     %s (attempts: %d)\n",
				rec.GetReceivedAt().AsTime().Local().Format(time.DateTime), rec.GetAttempts())
			if rec.GetState() == provv1.RequestState_REQUEST_STATE_COMPLETED {
				printRecord(out, rec, o.connector)
			}
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&id, "request-id", "", "the request's id (required)")
	_ = cmd.MarkFlagRequired("request-id")
	return cmd
}

func newProvisionListCmd() *cobra.Command {
	o := provisionOptions{}
	var active bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list --connector C [--active] [--limit N]",
		Short: "List a connector's provisioning requests, newest first, or its active time-bound grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return fmt.Errorf("--limit %d: use 1 to 1000", limit)
			}
			resp, err := o.client().List(cmd.Context(), connect.NewRequest(&provv1.ListRequest{
				ConnectorId: o.connector, ActiveTimeBound: active, Limit: int32(limit)}))
			if err != nil {
				return callError("provisioning requests of "+o.connector, o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				for _, r := range resp.Msg.GetRecords() {
					if err := writeJSONLine(out, r); err != nil {
						return err
					}
				}
				for _, g := range resp.Msg.GetGrants() {
					if err := writeJSONLine(out, g); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			if active {
				fmt.Fprintln(tw, "EXPIRES\tACCESS\tREQUEST\tREQUESTED BY\tWARNED\tREASON")
				for _, g := range resp.Msg.GetGrants() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", g.GetExpiresAt().AsTime().Local().Format(time.DateTime),
						targetWords(g.GetTarget()), g.GetRequestId(), g.GetRequestedBy(), g.GetWarned(), g.GetReason())
				}
				if len(resp.Msg.GetGrants()) == 0 {
					fmt.Fprintf(tw, "no active time-bound grants on %s\n", o.connector)
				}
				return tw.Flush()
			}
			fmt.Fprintln(tw, "RECEIVED\tREQUEST\tACTION\tACCESS\tSTATE\tOUTCOME\tREQUESTED BY")
			for _, r := range resp.Msg.GetRecords() {
				outcome := ""
				if res := r.GetResult(); res != nil {
					switch {
					case res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED:
						outcome = "failed: " + reasonWords(res.GetFailureReason())
					case res.GetNoOp():
						outcome = "succeeded (no-op)"
					default:
						outcome = "succeeded"
					}
				}
				req := r.GetRequest()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetReceivedAt().AsTime().Local().Format(time.DateTime), req.GetRequestId(),
					lowerName(req.GetAction().String(), "PROVISIONING_ACTION_"), targetWords(req.GetTarget()),
					lowerName(r.GetState().String(), "REQUEST_STATE_"), outcome, req.GetRequestedBy())
			}
			return tw.Flush()
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&active, "active", false, "list the active time-bound grants, soonest expiry first")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many, 1 to 1000")
	return cmd
}
