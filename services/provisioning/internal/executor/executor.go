// Package executor carries out provisioning requests: it takes them from
// the provisioning.<connector>.request work queue, checks them, writes the
// change to Okta within the connector's rate budget, reads it back, records
// and publishes the result, asks the sync for a targeted resync, and keeps
// the timers of time-bound grants.
//
// Exactly once. The ledger (package ledger) holds one record per
// request_id. A request whose record is COMPLETED is answered with its
// stored result again (same message id, so the stream drops the copy). The
// record moves to WRITING before the Okta write is sent; a redelivery after
// a crash that finds WRITING and Okta already in the requested state knows
// the write was its own and reports success (not a no-op). The result is
// written to the ledger before it is published, and republished on every
// redelivery of a completed request, so a crash between the two loses
// nothing. Time-bound grant timers are set before the record completes.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// Durable is the work-queue consumer's name.
const Durable = "provisioning-executor"

// OktaClients gives the Okta client of a connector, on the shared rate
// budget; an error means the connector cannot call Okta now.
type OktaClients func(ctx context.Context, conn *eventsv1.Connector) (*okta.Client, error)

// Deps are what the executor needs.
type Deps struct {
	Bus        *bus.Bus
	Ledger     *ledger.Store
	Connectors *connectors.Store
	Okta       OktaClients
	Log        *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Config tunes the executor.
type Config struct {
	// Concurrency is how many requests one replica carries out at once;
	// default 16.
	Concurrency int
	// WarnBefore is how long before a grant's expiry the expiring warning
	// goes out; grants shorter than twice this are warned at half their
	// lifetime. Default 24 h.
	WarnBefore time.Duration
	// ReadBackAttempts and ReadBackDelay bound the read-back: the first
	// wait, doubled per attempt. Default 6 attempts from 100 ms (about 3 s).
	ReadBackAttempts int
	ReadBackDelay    time.Duration
	// RetryBase and RetryMax shape the delay before a request that failed
	// transiently (429, 5xx, timeout past the client's own retries) is
	// tried again; MaxAttempts is how many times in all before it fails
	// (RATE_LIMITED or OKTA_UNAVAILABLE). Defaults 1 s, 30 s, 8.
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
	// CheckTTL is how long a user, group or app that the checks before a
	// write found usable is taken as such without reading it again (see
	// checkCache); default DefaultCheckTTL, negative to read each one for
	// every request.
	CheckTTL time.Duration
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.WarnBefore <= 0 {
		c.WarnBefore = 24 * time.Hour
	}
	if c.ReadBackAttempts <= 0 {
		c.ReadBackAttempts = 6
	}
	if c.ReadBackDelay <= 0 {
		c.ReadBackDelay = 100 * time.Millisecond
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.CheckTTL == 0 {
		c.CheckTTL = DefaultCheckTTL
	}
}

// Executor carries out provisioning requests.
type Executor struct {
	d   Deps
	cfg Config
	log *slog.Logger
	sub *bus.Subscription
	// checks is nil when Config.CheckTTL is negative.
	checks *checkCache
	// beforeResult, when set (tests), runs after the Okta write and before
	// the result is recorded: a crash injected there.
	beforeResult func(req *eventsv1.ProvisioningRequest) error
}

// New returns an Executor.
func New(d Deps, cfg Config) (*Executor, error) {
	if d.Bus == nil || d.Ledger == nil || d.Connectors == nil || d.Okta == nil {
		return nil, errors.New("provisioning executor: Bus, Ledger, Connectors and Okta are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	cfg.defaults()
	e := &Executor{d: d, cfg: cfg, log: d.Log}
	if cfg.CheckTTL > 0 {
		e.checks = newCheckCache(cfg.CheckTTL, d.Now)
	}
	return e, nil
}

// Start consumes the work queue until Stop.
func (e *Executor) Start(ctx context.Context) error {
	sub, err := bus.Consume(ctx, e.d.Bus, bus.ConsumerSpec{
		Stream: subjects.StreamProvisioning, Durable: Durable,
		Description: "accessbus provisioning: carries out provisioning requests",
		Filter:      []string{subjects.AllProvisioningRequests},
		AckWait:     time.Minute, Concurrency: e.cfg.Concurrency, Prefetch: 2 * e.cfg.Concurrency,
		// The executor counts attempts itself (MaxAttempts) and fails the
		// request with its reason; the bus's limit is a backstop.
		MaxDeliver: 4 * e.cfg.MaxAttempts, RetryBase: e.cfg.RetryBase, RetryMax: e.cfg.RetryMax,
	}, e.handle)
	if err != nil {
		return fmt.Errorf("start provisioning consumer: %w", err)
	}
	e.sub = sub
	return nil
}

// Stop stops consuming and waits for the requests in progress.
func (e *Executor) Stop(ctx context.Context) error {
	if e.sub == nil {
		return nil
	}
	return e.sub.Stop(ctx)
}

func (e *Executor) handle(ctx context.Context, m *bus.Message[*eventsv1.ProvisioningRequest]) error {
	req := m.Payload
	p, err := subjects.Parse(m.Subject)
	if err != nil || p.Connector == "" {
		return bus.Permanentf("provisioning request on %q: not a provisioning.<connector>.request subject", m.Subject)
	}
	if req.GetConnectorId() == "" {
		req.ConnectorId = p.Connector
	}
	if req.GetRequestId() == "" {
		// Without its idempotency key a request can be neither recorded
		// nor answered: the dead-letter stream keeps it with the reason.
		return bus.Permanentf("provisioning request on %s has no request_id: set an idempotency key and publish it again", m.Subject)
	}
	if req.GetConnectorId() != p.Connector {
		return bus.Permanentf("provisioning request %s names connector %q but was published on %s: publish it on provisioning.%s.request",
			req.GetRequestId(), req.GetConnectorId(), m.Subject, req.GetConnectorId())
	}
	return e.Handle(ctx, req)
}

// Handle carries out one request (one delivery of it). It returns an error
// for the work queue to retry (after bus.RetryAfter's delay); the outcome
// itself is published, not returned.
func (e *Executor) Handle(ctx context.Context, req *eventsv1.ProvisioningRequest) error {
	rec, rev, err := e.d.Ledger.Begin(ctx, req)
	if err != nil {
		return err
	}
	if rec.GetState() == provv1.RequestState_REQUEST_STATE_COMPLETED {
		// Seen before: answer with the first outcome, never apply it twice.
		return e.announce(ctx, rec)
	}
	// The stored request stands (a different payload under a known
	// request_id does not replace it).
	req = rec.GetRequest()
	r := &run{e: e, req: req, rec: rec, rev: rev, log: e.log.With("connector", req.GetConnectorId(), "request", req.GetRequestId())}
	res, err := r.carryOut(ctx)
	if err != nil {
		var retry *retryable
		if errors.As(err, &retry) {
			if int(rec.GetAttempts()) < e.cfg.MaxAttempts {
				delay := min(e.cfg.RetryBase<<min(rec.GetAttempts()-1, 16), e.cfg.RetryMax)
				if retry.after > delay {
					delay = retry.after
				}
				r.log.Warn("provisioning request failed transiently; trying again", "attempt", rec.GetAttempts(), "delay", delay, "err", retry.err)
				return bus.RetryAfter(retry.err, delay)
			}
			res = r.failed(retry.reason, fmt.Sprintf("gave up after %d attempts: %v", rec.GetAttempts(), retry.err), retry.err)
		} else {
			return err // the ledger or the bus: retried by the queue
		}
	}
	return r.complete(ctx, res)
}

// retryable is a transient failure: the request is tried again later, and
// fails with reason once its attempts are spent.
type retryable struct {
	err    error
	reason eventsv1.ProvisioningFailureReason
	after  time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// run is one delivery's work on one request.
type run struct {
	e   *Executor
	req *eventsv1.ProvisioningRequest
	rec *provv1.RequestRecord
	rev uint64
	log *slog.Logger
	cl  *okta.Client
	// scope keys the check cache: the connector and its org.
	scope string
	// noOp: Okta was in the requested state before anything was written
	// by this request.
	noOp bool
	msg  string
}

func (r *run) grant() bool {
	return r.req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT
}

func (r *run) result(outcome eventsv1.ProvisioningResult_Outcome) *eventsv1.ProvisioningResult {
	return &eventsv1.ProvisioningResult{
		RequestId: r.req.GetRequestId(), ConnectorId: r.req.GetConnectorId(), Outcome: outcome,
		CompletedAt: timestamppb.New(r.e.d.Now()), Action: r.req.GetAction(), Target: r.req.GetTarget(),
		RequestedBy: r.req.GetRequestedBy(), GrantKey: request.GrantKey(r.req.GetTarget()),
	}
}

func (r *run) failed(reason eventsv1.ProvisioningFailureReason, msg string, err error) *eventsv1.ProvisioningResult {
	res := r.result(eventsv1.ProvisioningResult_OUTCOME_FAILED)
	res.FailureReason, res.Message, res.OktaErrorCode = reason, msg, okta.ErrorCode(err)
	return res
}

// carryOut checks, writes and reads back; it returns the result, or a
// *retryable, or another error to retry as is.
func (r *run) carryOut(ctx context.Context) (*eventsv1.ProvisioningResult, error) {
	req := r.req
	if errs := request.Validate(req, r.e.d.Now()); len(errs) > 0 && !r.expiryRevoke() {
		res := r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INVALID_REQUEST,
			"the request is invalid: "+fieldList(errs), nil)
		res.FieldErrors = errs
		return res, nil
	}
	conn, err := r.e.d.Connectors.Get(ctx, req.GetConnectorId())
	if errors.Is(err, connectors.ErrNotFound) {
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_CONNECTOR_NOT_FOUND,
			"no connector "+req.GetConnectorId()+": check the connector id", nil), nil
	}
	if err != nil {
		return nil, err
	}
	if conn.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED {
		why := strings.ToLower(strings.TrimPrefix(conn.GetStatus().String(), "CONNECTOR_STATUS_"))
		if conn.GetStatusReason() != "" {
			why += ": " + conn.GetStatusReason()
		}
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_CONNECTOR_NOT_CONNECTED,
			"connector "+conn.GetId()+" is not connected ("+why+"): set its domain and token and let its first sync complete", nil), nil
	}
	caps := conn.GetCapabilities()
	if req.GetTarget().GetGroupMembership() != nil && !caps.GetProvisionGroupMembership() {
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_MISSING_CAPABILITY,
			"the connector's token may not change group memberships: give its admin the Group Membership Administrator or Group Administrator role (or Super Administrator)", nil), nil
	}
	if req.GetTarget().GetAppAssignment() != nil && !caps.GetProvisionAppAssignment() {
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_MISSING_CAPABILITY,
			"the connector's token may not change app assignments: give its admin the Application Administrator role (or Super Administrator)", nil), nil
	}
	if r.cl, err = r.e.d.Okta(ctx, conn); err != nil {
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_CONNECTOR_NOT_CONNECTED,
			"the connector cannot call Okta: "+err.Error(), err), nil
	}
	r.scope = checkScope(conn.GetId(), r.cl)
	if r.expiryRevoke() {
		if res, err := r.expiryStillDue(ctx); res != nil || err != nil {
			return res, err
		}
	}
	if gm := req.GetTarget().GetGroupMembership(); gm != nil {
		return r.membership(ctx, gm)
	}
	return r.assignment(ctx, req.GetTarget().GetAppAssignment())
}

// expiryRevoke says the request ends a time-bound grant.
func (r *run) expiryRevoke() bool {
	return r.req.GetRequestedBy() == request.ExpiryRequester && strings.HasPrefix(r.req.GetRequestId(), "expiry:")
}

// expiryStillDue succeeds at once, writing nothing, when the timer the
// revoke was made for is gone or was replaced by a newer grant: that newer
// grant must not be revoked.
func (r *run) expiryStillDue(ctx context.Context) (*eventsv1.ProvisioningResult, error) {
	key := request.GrantKey(r.req.GetTarget())
	g, _, err := r.e.d.Ledger.GetGrant(ctx, r.req.GetConnectorId(), key)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	if errors.Is(err, ledger.ErrNotFound) || request.ExpiryRequestID(g.GetRequestId()) != r.req.GetRequestId() {
		res := r.result(eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED)
		res.NoOp = true
		res.Message = "the time-bound grant was revoked or replaced before it expired: nothing to do"
		return res, nil
	}
	return nil, nil
}

func fieldList(errs []*eventsv1.FieldError) string {
	parts := make([]string, len(errs))
	for i, fe := range errs {
		parts[i] = fe.GetField() + ": " + fe.GetReason()
	}
	return strings.Join(parts, "; ")
}

// oktaFailure turns a failed Okta call into a result or a retryable; what
// names the object or change for the message.
func (r *run) oktaFailure(what string, err error) (*eventsv1.ProvisioningResult, error) {
	switch {
	case errors.Is(err, okta.ErrRateLimited):
		return nil, &retryable{err: fmt.Errorf("%s: %w", what, err), reason: eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_RATE_LIMITED}
	case errors.Is(err, okta.ErrTransient):
		return nil, &retryable{err: fmt.Errorf("%s: %w", what, err), reason: eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_OKTA_UNAVAILABLE}
	case errors.Is(err, okta.ErrNotFound):
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_FOUND, what+": not found in Okta", err), nil
	case okta.ErrorCode(err) == okta.CodeInactiveUserForApps:
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INACTIVE, what+": Okta assigns apps to active users only", err), nil
	case errors.Is(err, okta.ErrPermissionDenied):
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_PERMISSION_DENIED,
			what+": Okta refused (403): the token's admin role does not cover this group or app; widen the role's scope in Okta", err), nil
	case errors.Is(err, okta.ErrInvalidCredentials):
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_CONNECTOR_NOT_CONNECTED,
			what+": Okta rejected the connector's API token: set a new one", err), nil
	case errors.Is(err, okta.ErrInvalidInput):
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INVALID_REQUEST, what+": Okta refused the request: "+err.Error(), err), nil
	case ctxDone(err):
		return nil, err
	}
	return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INTERNAL, what+": "+err.Error(), err), nil
}

func ctxDone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// inactive says whether a user's status keeps it from being granted access.
func inactive(status string) bool { return status == "DEPROVISIONED" || status == "SUSPENDED" }

// checkUser reads the user: a result when it does not exist, or (for a
// grant) is not active.
func (r *run) checkUser(ctx context.Context, id string) (*eventsv1.ProvisioningResult, error) {
	u, err := r.user(ctx, id)
	if err != nil {
		return r.oktaFailure("user "+id, err)
	}
	if r.grant() && inactive(u.Status) {
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INACTIVE,
			fmt.Sprintf("user %s is %s: reactivate or unsuspend the user in Okta first", id, u.Status), nil), nil
	}
	return nil, nil
}

// writable refuses the groups Okta does not let anyone change.
func (r *run) writable(g okta.Group) *eventsv1.ProvisioningResult {
	switch g.Type {
	case "APP_GROUP":
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_WRITABLE,
			fmt.Sprintf("group %s (%s) is imported from an app (APP_GROUP): change its members in that app", g.ID, g.Name), nil)
	case "BUILT_IN":
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_WRITABLE,
			fmt.Sprintf("group %s (%s) is Okta's built-in group: its members are every user", g.ID, g.Name), nil)
	}
	return nil
}

// membership carries out a group membership request.
func (r *run) membership(ctx context.Context, gm *eventsv1.GroupMembershipTarget) (*eventsv1.ProvisioningResult, error) {
	uid, gid := gm.GetUserId(), gm.GetGroupId()
	if res, err := r.checkUser(ctx, uid); res != nil || err != nil {
		return res, err
	}
	g, err := r.group(ctx, gid)
	if err != nil {
		return r.oktaFailure("group "+gid, err)
	}
	if res := r.writable(g); res != nil {
		return res, nil
	}
	isMember := func() (bool, error) {
		var gs []string
		err := r.cl.ListUserGroupIDs(ctx, uid, func(p []string) error { gs = append(gs, p...); return nil })
		return slices.Contains(gs, gid), err
	}
	want := r.grant()
	has, err := isMember()
	if err != nil {
		return r.oktaFailure("groups of user "+uid, err)
	}
	if has != want {
		if err := r.writing(ctx); err != nil {
			return nil, err
		}
		if want {
			err = r.cl.AddGroupMember(ctx, gid, uid)
		} else {
			err = r.cl.RemoveGroupMember(ctx, gid, uid)
		}
		if err != nil {
			return r.oktaFailure(r.describe(), err)
		}
		if res, err := r.readBack(ctx, func() (bool, error) {
			has, err := isMember()
			return has == want, err
		}); res != nil || err != nil {
			return res, err
		}
	} else {
		r.noOp = r.rec.GetState() != provv1.RequestState_REQUEST_STATE_WRITING
	}
	return r.succeeded(), nil
}

// assignment carries out an app assignment request.
func (r *run) assignment(ctx context.Context, aa *eventsv1.AppAssignmentTarget) (*eventsv1.ProvisioningResult, error) {
	aid := aa.GetAppId()
	app, err := r.app(ctx, aid)
	if err != nil {
		return r.oktaFailure("app "+aid, err)
	}
	if r.grant() && app.Status != "ACTIVE" {
		return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INACTIVE,
			fmt.Sprintf("app %s (%s) is %s: activate it in Okta first", aid, app.Label, app.Status), nil), nil
	}
	var profile map[string]any
	if aa.GetProfile() != nil {
		profile = aa.GetProfile().AsMap()
	}
	want := r.grant()
	var (
		check func() (bool, error)
		write func() error
	)
	if uid := aa.GetUserId(); uid != "" {
		if res, err := r.checkUser(ctx, uid); res != nil || err != nil {
			return res, err
		}
		// state: assigned directly with the requested profile (grant), or
		// not assigned directly (revoke).
		check = func() (bool, error) {
			au, err := r.cl.GetAppUser(ctx, aid, uid)
			if errors.Is(err, okta.ErrNotFound) {
				return !want, nil
			}
			if err != nil {
				return false, err
			}
			if !want {
				return au.Scope != "USER", nil
			}
			return au.Scope == "USER" && profileHolds(au.Profile, profile), nil
		}
		write = func() error {
			if want {
				_, err := r.cl.AssignUserToApp(ctx, aid, uid, profile)
				return err
			}
			return r.cl.UnassignUserFromApp(ctx, aid, uid)
		}
		if !want {
			au, err := r.cl.GetAppUser(ctx, aid, uid)
			switch {
			case err == nil && au.Scope == "GROUP":
				return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_WRITABLE,
					fmt.Sprintf("user %s has app %s through a group assignment, not directly: revoke the group's assignment or the user's membership of that group", uid, aid), nil), nil
			case err != nil && !errors.Is(err, okta.ErrNotFound):
				return r.oktaFailure("assignment of user "+uid+" to app "+aid, err)
			}
		}
	} else {
		gid := aa.GetGroupId()
		if _, err := r.group(ctx, gid); err != nil {
			return r.oktaFailure("group "+gid, err)
		}
		check = func() (bool, error) {
			ag, err := r.cl.GetAppGroup(ctx, aid, gid)
			if errors.Is(err, okta.ErrNotFound) {
				return !want, nil
			}
			if err != nil {
				return false, err
			}
			return want && profileHolds(ag.Profile, profile), nil
		}
		write = func() error {
			if want {
				_, err := r.cl.AssignGroupToApp(ctx, aid, gid, profile)
				return err
			}
			return r.cl.UnassignGroupFromApp(ctx, aid, gid)
		}
	}
	done, err := check()
	if err != nil {
		return r.oktaFailure("assignment to app "+aid, err)
	}
	if done {
		r.noOp = r.rec.GetState() != provv1.RequestState_REQUEST_STATE_WRITING
		return r.succeeded(), nil
	}
	if err := r.writing(ctx); err != nil {
		return nil, err
	}
	if err := write(); err != nil && !(errors.Is(err, okta.ErrNotFound) && !want) {
		return r.oktaFailure(r.describe(), err)
	}
	if res, err := r.readBack(ctx, check); res != nil || err != nil {
		return res, err
	}
	return r.succeeded(), nil
}

// profileHolds says whether an assignment's profile has every attribute
// the request asks for (nil asks for none).
func profileHolds(have, want map[string]any) bool {
	for k, v := range want {
		hv, ok := have[k]
		if !ok {
			return false
		}
		a, _ := structpb.NewValue(hv)
		b, _ := structpb.NewValue(v)
		if a.String() != b.String() {
			return false
		}
	}
	return true
}

// writing records, before the Okta write, that it is being sent.
func (r *run) writing(ctx context.Context) error {
	if r.rec.GetState() == provv1.RequestState_REQUEST_STATE_WRITING {
		return nil
	}
	r.rec.State = provv1.RequestState_REQUEST_STATE_WRITING
	rev, err := r.e.d.Ledger.Update(ctx, r.rec, r.rev)
	if err != nil {
		return err // a concurrent delivery moved it: retried, it will see
	}
	r.rev = rev
	return nil
}

// readBack confirms the change, tolerating Okta's eventual consistency.
func (r *run) readBack(ctx context.Context, done func() (bool, error)) (*eventsv1.ProvisioningResult, error) {
	delay := r.e.cfg.ReadBackDelay
	for attempt := 1; ; attempt++ {
		ok, err := done()
		if err != nil {
			return r.oktaFailure("read back "+r.describe(), err)
		}
		if ok {
			if attempt > 1 {
				r.log.Info("read-back confirmed the change after Okta caught up", "attempts", attempt)
			}
			return nil, nil
		}
		if attempt >= r.e.cfg.ReadBackAttempts {
			return r.failed(eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_READ_BACK_FAILED,
				fmt.Sprintf("Okta accepted %s but %d reads over %s did not show it: check it in Okta; a later sync shows the truth",
					r.describe(), attempt, r.e.cfg.ReadBackDelay*time.Duration(1<<(attempt-1))), nil), nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// describe names the change in words.
func (r *run) describe() string {
	t := r.req.GetTarget()
	verb := map[bool]string{true: "adding", false: "removing"}[r.grant()]
	if gm := t.GetGroupMembership(); gm != nil {
		return fmt.Sprintf("%s user %s %s group %s", verb, gm.GetUserId(), map[bool]string{true: "to", false: "from"}[r.grant()], gm.GetGroupId())
	}
	aa := t.GetAppAssignment()
	who := "user " + aa.GetUserId()
	if aa.GetGroupId() != "" {
		who = "group " + aa.GetGroupId()
	}
	verb = map[bool]string{true: "assigning", false: "unassigning"}[r.grant()]
	return fmt.Sprintf("%s app %s %s %s", verb, aa.GetAppId(), map[bool]string{true: "to", false: "from"}[r.grant()], who)
}

func (r *run) succeeded() *eventsv1.ProvisioningResult {
	res := r.result(eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED)
	res.NoOp = r.noOp
	d := r.describe()
	if r.noOp {
		res.Message = "already so in Okta, nothing written: " + d
	} else {
		res.Message = "done: " + d
	}
	if r.grant() {
		switch {
		case r.req.GetExpiresAt() != nil:
			res.ExpiresAt = r.req.GetExpiresAt()
		case r.req.GetDuration() != nil:
			res.ExpiresAt = timestamppb.New(res.GetCompletedAt().AsTime().Add(r.req.GetDuration().AsDuration()))
		}
		if res.GetExpiresAt() != nil {
			res.Message += "; revoked at " + res.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
		}
	}
	return res
}

// complete sets the grant's timer, records the result, then announces it.
func (r *run) complete(ctx context.Context, res *eventsv1.ProvisioningResult) error {
	if res.GetOutcome() == eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED {
		if err := r.timers(ctx, res); err != nil {
			return err
		}
	}
	if r.e.beforeResult != nil {
		if err := r.e.beforeResult(r.req); err != nil {
			return err
		}
	}
	r.rec.State = provv1.RequestState_REQUEST_STATE_COMPLETED
	r.rec.Result = res
	rev, err := r.e.d.Ledger.Update(ctx, r.rec, r.rev)
	if err != nil {
		return err
	}
	r.rev = rev
	level := slog.LevelInfo
	if res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED {
		level = slog.LevelWarn
	}
	r.log.Log(ctx, level, "provisioning request completed", "outcome", res.GetOutcome().String(),
		"reason", res.GetFailureReason().String(), "no_op", res.GetNoOp(), "message", res.GetMessage())
	return r.e.announce(ctx, r.rec)
}

// timers keeps the time-bound grant ledger in step with a success.
func (r *run) timers(ctx context.Context, res *eventsv1.ProvisioningResult) error {
	key := res.GetGrantKey()
	cid := r.req.GetConnectorId()
	if !r.grant() || res.GetExpiresAt() == nil {
		// A revoke ends the timer; a grant without expiry replaces it with
		// none: the access is now permanent by request.
		return r.e.d.Ledger.DeleteGrant(ctx, cid, key, "")
	}
	granted := res.GetCompletedAt().AsTime()
	expires := res.GetExpiresAt().AsTime()
	warn := expires.Add(-r.e.cfg.WarnBefore)
	if life := expires.Sub(granted); life < 2*r.e.cfg.WarnBefore {
		warn = granted.Add(life / 2)
	}
	return r.e.d.Ledger.PutGrant(ctx, &provv1.TimeBoundGrant{
		ConnectorId: cid, RequestId: r.req.GetRequestId(), Target: r.req.GetTarget(), GrantKey: key,
		GrantedAt: res.GetCompletedAt(), ExpiresAt: res.GetExpiresAt(), WarnAt: timestamppb.New(warn),
		RequestedBy: r.req.GetRequestedBy(), Reason: r.req.GetReason(),
	})
}

// announce publishes a completed request's result and, for a success, the
// targeted sync request that brings the change onto ACCESS. Both have ids
// derived from the request, so announcing again stores nothing new. The
// two are sent together and their acks awaited together: one round trip
// to the server rather than two in a row.
func (e *Executor) announce(ctx context.Context, rec *provv1.RequestRecord) error {
	res := rec.GetResult()
	subj, err := subjects.ProvisioningResult(res)
	if err != nil {
		return bus.Permanent(fmt.Errorf("result of %s: %w", res.GetRequestId(), err))
	}
	acks := make([]jetstream.PubAckFuture, 0, 2)
	f, err := e.d.Bus.PublishAsync(ctx, subj, request.ResultMsgID(res.GetConnectorId(), res.GetRequestId()), res)
	if err != nil {
		return err
	}
	acks = append(acks, f)
	if res.GetOutcome() == eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED {
		f, err := e.requestSync(ctx, rec.GetRequest())
		if err != nil {
			return errors.Join(err, awaitAcks(ctx, acks, publishAckTimeout))
		}
		acks = append(acks, f)
	}
	return awaitAcks(ctx, acks, publishAckTimeout)
}

// publishAckTimeout bounds the wait for the stream's acknowledgements, as
// the JetStream client's default timeout bounds a publish that waits for
// its own: an acknowledgement lost (a reconnect, a new stream leader)
// fails the delivery, which is tried again rather than held forever.
const publishAckTimeout = 5 * time.Second

// awaitAcks waits, at most timeout in all, for the stream's
// acknowledgement of each publish; the first failure is returned (the
// request is then retried, and the stream's dedupe drops what was stored
// already).
func awaitAcks(ctx context.Context, acks []jetstream.PubAckFuture, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
		case <-timer.C:
			return fmt.Errorf("publish to %s: no acknowledgement from the stream within %s", f.Msg().Subject, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// requestSync asks the sync for a targeted resync of the request's target,
// and returns the ack to come.
func (e *Executor) requestSync(ctx context.Context, req *eventsv1.ProvisioningRequest) (jetstream.PubAckFuture, error) {
	t := req.GetTarget()
	var target *eventsv1.SyncTarget
	if gm := t.GetGroupMembership(); gm != nil {
		target = &eventsv1.SyncTarget{Kind: eventsv1.SyncTarget_KIND_GROUP_MEMBERS, Id: gm.GetGroupId(),
			Member: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: gm.GetUserId()}}
	} else {
		aa := t.GetAppAssignment()
		target = &eventsv1.SyncTarget{Kind: eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS, Id: aa.GetAppId()}
		if aa.GetUserId() != "" {
			target.Member = &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: aa.GetUserId()}
		} else {
			target.Member = &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: aa.GetGroupId()}
		}
	}
	subj, err := subjects.SyncRequest(req.GetConnectorId())
	if err != nil {
		return nil, bus.Permanent(err)
	}
	id := "provisioning:" + req.GetRequestId()
	return e.d.Bus.PublishAsync(ctx, subj, subjects.MsgID(subjects.DomainSync, req.GetConnectorId(), subjects.EntityRequest, id),
		&eventsv1.SyncRequest{
			RequestId: id, ConnectorId: req.GetConnectorId(), Mode: eventsv1.SyncMode_SYNC_MODE_TARGETED,
			Targets: []*eventsv1.SyncTarget{target}, RequestedBy: "provisioning",
			Reason: "confirm provisioning request " + req.GetRequestId(), RequestedAt: timestamppb.New(e.d.Now()),
		})
}
