// Package rules decides who is emailed about what: it turns catalog, sync
// and provisioning events into rendered emails, one per recipient, and hands
// them to the delivery package, which sends each once.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/services/notifier/internal/delivery"
	"github.com/accessbus/accessbus/services/notifier/internal/directory"
	"github.com/accessbus/accessbus/services/notifier/internal/templates"
)

// Why a recipient gets an email, as the email says it.
const (
	reasonOwner     = "you own the connector"
	reasonRequester = "you asked for this access"
	reasonGrantee   = "you hold this access"
)

// Source identifies the bus message an email is about.
type Source struct {
	Stream string
	Seq    uint64
	// MsgID is the message's Nats-Msg-Id; empty when it had none.
	MsgID string
	// Time is when the stream stored the message.
	Time time.Time
}

// Key is the part of every event key that names the source message: its
// deterministic Nats-Msg-Id when it has one, since a republish of the same
// change keeps it, else its stream sequence.
func (s Source) Key() string {
	if s.MsgID != "" {
		return s.Stream + "/" + s.MsgID
	}
	return s.Stream + "/seq/" + strconv.FormatUint(s.Seq, 10)
}

// ConnectorGetter reads connector records (libs/connectors.Store).
type ConnectorGetter interface {
	Get(ctx context.Context, id string) (*eventsv1.Connector, error)
}

// Deliverer sends an email once (delivery.Deliverer).
type Deliverer interface {
	Deliver(ctx context.Context, e delivery.Email) error
}

// Config tunes the rules.
type Config struct {
	// BaseURL is where people open accessbus, for links.
	BaseURL string
	// MaxEventAge: events stored longer ago than this are not mailed about
	// (a first start replaying a stream's history must not flood inboxes).
	MaxEventAge time.Duration
	// FailuresToNotify is how many syncs in a row must fail before the
	// owners hear of it.
	FailuresToNotify int
}

// Rules turns events into emails.
type Rules struct {
	dir     directory.Directory
	conns   ConnectorGetter
	deliver Deliverer
	streaks *Streaks
	tmpl    *templates.Set
	log     *slog.Logger
	cfg     Config
	now     func() time.Time
}

// New returns the rules.
func New(dir directory.Directory, conns ConnectorGetter, d Deliverer, streaks *Streaks, log *slog.Logger, cfg Config) (*Rules, error) {
	tmpl, err := templates.Load()
	if err != nil {
		return nil, err
	}
	if cfg.MaxEventAge <= 0 {
		cfg.MaxEventAge = 24 * time.Hour
	}
	if cfg.FailuresToNotify <= 0 {
		cfg.FailuresToNotify = 3
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Rules{dir: dir, conns: conns, deliver: d, streaks: streaks, tmpl: tmpl, log: log, cfg: cfg, now: time.Now}, nil
}

func (r *Rules) connectorURL(id string) string {
	return r.cfg.BaseURL + "/connectors/" + url.PathEscape(id)
}

// tooOld reports (and logs) whether src is too old to mail about.
func (r *Rules) tooOld(src Source, what string) bool {
	if src.Time.IsZero() || r.now().Sub(src.Time) <= r.cfg.MaxEventAge {
		return false
	}
	r.log.Info("no email: the event is older than the notifier's maximum event age", "about", what,
		"stored_at", src.Time, "max_age", r.cfg.MaxEventAge, "stream", src.Stream, "seq", src.Seq)
	return true
}

// recipients collects addresses, once each, with every reason each has.
type recipients struct {
	order []string
	by    map[string]*[]string
	raw   map[string]string
}

func (rs *recipients) add(addr, reason string) {
	if rs.by == nil {
		rs.by, rs.raw = map[string]*[]string{}, map[string]string{}
	}
	k := strings.ToLower(strings.TrimSpace(addr))
	if p, ok := rs.by[k]; ok {
		for _, have := range *p {
			if have == reason {
				return
			}
		}
		*p = append(*p, reason)
		return
	}
	rs.order = append(rs.order, k)
	rs.by[k] = &[]string{reason}
	rs.raw[k] = strings.TrimSpace(addr)
}

// addOwners adds the connector's owners, skipping the identity skip.
func (r *Rules) addOwners(ctx context.Context, rs *recipients, connectorID string, owners []*eventsv1.ConnectorOwner, skip string) error {
	for _, o := range owners {
		if skip != "" && o.GetIdentityId() == skip {
			continue
		}
		addr := o.GetEmail()
		if addr == "" && o.GetIdentityId() != "" {
			a, ok, err := r.dir.IdentityEmail(ctx, o.GetIdentityId())
			if err != nil {
				return err
			}
			if ok {
				addr = a
			}
		}
		if addr == "" {
			r.log.Warn("connector owner has no known email; not mailed", "connector", connectorID, "identity", o.GetIdentityId())
			continue
		}
		rs.add(addr, reasonOwner)
	}
	return nil
}

// connector reads the connector's record; nil when it does not exist.
func (r *Rules) connector(ctx context.Context, id string) (*eventsv1.Connector, error) {
	c, err := r.conns.Get(ctx, id)
	if errors.Is(err, connectors.ErrNotFound) {
		r.log.Warn("connector not found: its owners are not mailed", "connector", id)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read connector %s: %w", id, err)
	}
	return c, nil
}

// send renders one email per recipient and delivers each, keyed by
// keyBase, kind and recipient; it returns the deliveries' errors joined.
func (r *Rules) send(ctx context.Context, keyBase, kind, connectorID string, rs *recipients, data func(reasons []string) any) error {
	var errs []error
	for _, k := range rs.order {
		reasons := *rs.by[k]
		out, err := r.tmpl.Render(kind, data(reasons))
		if err != nil {
			return fmt.Errorf("render %s: %w", kind, err)
		}
		e := delivery.Email{
			EventKey:    keyBase + "/" + kind + "/" + k,
			Template:    kind,
			ConnectorID: connectorID,
			To:          rs.raw[k],
			Subject:     out.Subject,
			Text:        out.Text,
			HTML:        out.HTML,
		}
		if err := r.deliver.Deliver(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil && allClaimed(errs) {
		// Another delivery (the same email through another event, or
		// another replica) is talking to SMTP: it is usually done within a
		// second, so look again soon rather than after the growing delay
		// meant for SMTP failures.
		return bus.RetryAfter(err, ClaimRecheck)
	}
	return err
}

// ClaimRecheck is how soon an event whose every email is being sent by
// another delivery is looked at again.
const ClaimRecheck = time.Second

// allClaimed says whether every error is delivery.ErrClaimed.
func allClaimed(errs []error) bool {
	for _, err := range errs {
		if !errors.Is(err, delivery.ErrClaimed) {
			return false
		}
	}
	return len(errs) > 0
}

// ConnectorCreated asks the owners of a new, not yet connected connector to
// set it up; the owner who created it is not mailed.
func (r *Rules) ConnectorCreated(ctx context.Context, src Source, ev *eventsv1.ConnectorCreated) error {
	return r.setup(ctx, src, ev.GetConnector(), ev.GetConnector().GetOwners(), ev.GetConnector().GetCreatedBy())
}

// OwnersAssigned asks new owners to set up a connector that is not
// connected yet; the owner who assigned them is not mailed.
func (r *Rules) OwnersAssigned(ctx context.Context, src Source, ev *eventsv1.ConnectorOwnersAssigned) error {
	return r.setup(ctx, src, ev.GetConnector(), ev.GetNewOwners(), ev.GetAssignedBy())
}

// setupKey keys setup emails by connector, not by event: the catalog
// announces a new connector's owners both in catalog.connector.created and in
// catalog.connector.owners_assigned, and each owner is asked once. The
// connector's creation time tells a connector deleted and created again
// under the same id apart.
func setupKey(c *eventsv1.Connector) string {
	k := "setup/" + c.GetId()
	if t := c.GetCreatedAt(); t != nil {
		k += "/" + strconv.FormatInt(t.AsTime().UnixNano(), 10)
	}
	return k
}

func (r *Rules) setup(ctx context.Context, src Source, c *eventsv1.Connector, owners []*eventsv1.ConnectorOwner, actor string) error {
	if c.GetId() == "" {
		return bus.Permanentf("connector event without a connector id")
	}
	// A record always starts NOT_CONNECTED; an event that leaves the status
	// unset is taken as that.
	if s := c.GetStatus(); s != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED && s != eventsv1.ConnectorStatus_CONNECTOR_STATUS_UNSPECIFIED {
		r.log.Debug("no setup email: the connector is not in NOT_CONNECTED", "connector", c.GetId(), "status", c.GetStatus().String())
		return nil
	}
	if r.tooOld(src, templates.ConnectorSetup) {
		return nil
	}
	for _, o := range owners {
		if actor != "" && o.GetIdentityId() == actor {
			r.log.Info("no setup email to the owner who made the change", "connector", c.GetId(), "identity", actor)
		}
	}
	var rs recipients
	if err := r.addOwners(ctx, &rs, c.GetId(), owners, actor); err != nil {
		return err
	}
	connURL := r.connectorURL(c.GetId())
	return r.send(ctx, setupKey(c), templates.ConnectorSetup, c.GetId(), &rs, func(reasons []string) any {
		return templates.SetupData{
			Common:   templates.Common{ConnectorID: c.GetId(), OktaDomain: c.GetOktaDomain(), ConnectorURL: connURL, Reasons: reasons},
			SetupURL: connURL + "/setup",
		}
	})
}

// SyncFailed counts a failed run; when it makes FailuresToNotify failures
// in a row, the owners are mailed, once per streak.
func (r *Rules) SyncFailed(ctx context.Context, src Source, ev *eventsv1.SyncRunFailed) error {
	if ev.GetReason() == eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_CANCELLED {
		// A run stopped by a shutdown or a disconnect says nothing about the org.
		return nil
	}
	runID := ev.GetRunId()
	if runID == "" {
		runID = src.Key()
	}
	notify, count, err := r.streaks.Failed(ctx, ev.GetConnectorId(), runID, src.Seq, r.cfg.FailuresToNotify)
	if err != nil {
		return err
	}
	if !notify || r.tooOld(src, templates.SyncFailing) {
		return nil
	}
	c, err := r.connector(ctx, ev.GetConnectorId())
	if err != nil || c == nil {
		return err
	}
	var rs recipients
	if err := r.addOwners(ctx, &rs, c.GetId(), c.GetOwners(), ""); err != nil {
		return err
	}
	r.log.Info("syncs keep failing: mailing the owners", "connector", c.GetId(), "failures", count, "owners", len(rs.order))
	return r.send(ctx, src.Key(), templates.SyncFailing, c.GetId(), &rs, func(reasons []string) any {
		return templates.SyncFailingData{
			Common:        templates.Common{ConnectorID: c.GetId(), OktaDomain: c.GetOktaDomain(), ConnectorURL: r.connectorURL(c.GetId()), Reasons: reasons},
			Failures:      count,
			Reason:        humanEnum(ev.GetReason().String(), "SYNC_FAILURE_REASON_"),
			Message:       ev.GetMessage(),
			OktaErrorCode: ev.GetOktaErrorCode(),
			FailedAt:      ev.GetFailedAt().AsTime(),
		}
	})
}

// SyncCompleted ends a connector's streak of failures.
func (r *Rules) SyncCompleted(ctx context.Context, src Source, ev *eventsv1.SyncRunCompleted) error {
	return r.streaks.Completed(ctx, ev.GetConnectorId(), src.Seq)
}

// ProvisioningFailed mails the requester (when requested_by is a known
// identity) and the connector's owners.
func (r *Rules) ProvisioningFailed(ctx context.Context, src Source, res *eventsv1.ProvisioningResult) error {
	if res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_FAILED {
		return nil
	}
	if r.tooOld(src, templates.ProvisioningFailed) {
		return nil
	}
	var rs recipients
	requester, err := r.requester(ctx, res.GetConnectorId(), res.GetRequestedBy(), res.GetRequestId())
	if err != nil {
		return err
	}
	if requester != "" {
		rs.add(requester, reasonRequester)
	}
	c, err := r.connector(ctx, res.GetConnectorId())
	if err != nil {
		return err
	}
	if c != nil {
		if err := r.addOwners(ctx, &rs, c.GetId(), c.GetOwners(), ""); err != nil {
			return err
		}
	}
	var fields []string
	for _, f := range res.GetFieldErrors() {
		fields = append(fields, f.GetField()+": "+f.GetReason())
	}
	return r.send(ctx, src.Key(), templates.ProvisioningFailed, res.GetConnectorId(), &rs, func(reasons []string) any {
		return templates.ProvisioningFailedData{
			Common:        templates.Common{ConnectorID: res.GetConnectorId(), OktaDomain: c.GetOktaDomain(), ConnectorURL: r.connectorURL(res.GetConnectorId()), Reasons: reasons},
			RequestID:     res.GetRequestId(),
			Action:        humanEnum(res.GetAction().String(), "PROVISIONING_ACTION_"),
			Target:        describeTarget(res.GetTarget()),
			RequestedBy:   displayName(requester, res.GetRequestedBy()),
			Reason:        humanEnum(res.GetFailureReason().String(), "PROVISIONING_FAILURE_REASON_"),
			Message:       res.GetMessage(),
			FieldErrors:   fields,
			OktaErrorCode: res.GetOktaErrorCode(),
			CompletedAt:   res.GetCompletedAt().AsTime(),
		}
	})
}

// Expiring mails the grantee (an Okta user linked to a known identity) and
// the connector's owners before time-bound access is revoked.
func (r *Rules) Expiring(ctx context.Context, src Source, ev *eventsv1.ProvisioningExpiring) error {
	if at := ev.GetExpiresAt(); at != nil && at.AsTime().Before(r.now()) {
		r.log.Info("no expiry warning: the access has expired already", "connector", ev.GetConnectorId(), "request_id", ev.GetRequestId())
		return nil
	}
	if r.tooOld(src, templates.GrantExpiring) {
		return nil
	}
	var rs recipients
	g := ev.GetGrantee()
	grantee := ""
	switch g.GetType() {
	case eventsv1.PrincipalType_PRINCIPAL_TYPE_USER:
		addr, ok, err := r.dir.OktaUserEmail(ctx, ev.GetConnectorId(), g.GetId())
		if err != nil {
			return err
		}
		if ok {
			grantee = addr
			rs.add(addr, reasonGrantee)
		} else {
			r.log.Info("the grantee's Okta user is linked to no known identity: only the owners are mailed",
				"connector", ev.GetConnectorId(), "okta_user", g.GetId(), "request_id", ev.GetRequestId())
		}
	default:
		r.log.Info("the grantee is a group: only the owners are mailed", "connector", ev.GetConnectorId(), "okta_group", g.GetId(), "request_id", ev.GetRequestId())
	}
	c, err := r.connector(ctx, ev.GetConnectorId())
	if err != nil {
		return err
	}
	if c != nil {
		if err := r.addOwners(ctx, &rs, c.GetId(), c.GetOwners(), ""); err != nil {
			return err
		}
	}
	requester, _, err := r.dir.IdentityEmail(ctx, ev.GetRequestedBy())
	if err != nil {
		return err
	}
	return r.send(ctx, src.Key(), templates.GrantExpiring, ev.GetConnectorId(), &rs, func(reasons []string) any {
		return templates.GrantExpiringData{
			Common:      templates.Common{ConnectorID: ev.GetConnectorId(), OktaDomain: c.GetOktaDomain(), ConnectorURL: r.connectorURL(ev.GetConnectorId()), Reasons: reasons},
			RequestID:   ev.GetRequestId(),
			Target:      describeTarget(ev.GetTarget()),
			Grantee:     displayName(grantee, describePrincipal(g)),
			RequestedBy: displayName(requester, ev.GetRequestedBy()),
			ExpiresAt:   ev.GetExpiresAt().AsTime(),
		}
	})
}

// requester returns the email of requested_by when it is a known identity.
func (r *Rules) requester(ctx context.Context, connectorID, requestedBy, requestID string) (string, error) {
	if requestedBy == "" {
		return "", nil
	}
	addr, ok, err := r.dir.IdentityEmail(ctx, requestedBy)
	if err != nil {
		return "", err
	}
	if !ok {
		r.log.Info("requested_by is not a known identity (a system, or an identity the catalog has not published): no email to the requester",
			"connector", connectorID, "requested_by", requestedBy, "request_id", requestID)
		return "", nil
	}
	return addr, nil
}

func displayName(email, fallback string) string {
	if email != "" {
		return email
	}
	return fallback
}

// humanEnum turns "PREFIX_INVALID_TOKEN" into "invalid token".
func humanEnum(name, prefix string) string {
	s := strings.TrimPrefix(name, prefix)
	if s == "UNSPECIFIED" || s == "" {
		return "unknown"
	}
	return strings.ToLower(strings.ReplaceAll(s, "_", " "))
}

func describePrincipal(p *eventsv1.Principal) string {
	switch p.GetType() {
	case eventsv1.PrincipalType_PRINCIPAL_TYPE_USER:
		return "Okta user " + p.GetId()
	case eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP:
		return "Okta group " + p.GetId()
	}
	return p.GetId()
}

func describeTarget(t *eventsv1.ProvisioningTarget) string {
	switch {
	case t.GetGroupMembership() != nil:
		g := t.GetGroupMembership()
		return fmt.Sprintf("membership of Okta user %s in group %s", g.GetUserId(), g.GetGroupId())
	case t.GetAppAssignment() != nil:
		a := t.GetAppAssignment()
		if a.GetGroupId() != "" {
			return fmt.Sprintf("assignment of app %s to Okta group %s", a.GetAppId(), a.GetGroupId())
		}
		return fmt.Sprintf("assignment of app %s to Okta user %s", a.GetAppId(), a.GetUserId())
	}
	return "unknown access"
}
