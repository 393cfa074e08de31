package catalog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/connectors"
	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// minSyncInterval is the shortest sync interval a connector may have.
const minSyncInterval = time.Minute

// reasonTokenAccepted is the status_reason of a connector whose new token
// Okta accepted, until its first sync starts.
const reasonTokenAccepted = "Okta accepted the API token; the first sync starts shortly"

// AddConnector implements ConnectorServiceHandler.
func (a *API) AddConnector(ctx context.Context, req *connect.Request[catalogv1.AddConnectorRequest]) (*connect.Response[catalogv1.AddConnectorResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(c, "adding a connector"); err != nil {
		return nil, err
	}
	m := req.Msg

	// The application: checked before anything is written.
	var app *eventsv1.Application
	var newName string
	switch x := m.GetApplication().(type) {
	case *catalogv1.AddConnectorRequest_NewApplicationName:
		newName = strings.TrimSpace(x.NewApplicationName)
		if newName == "" {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("new_application_name is empty: name the new application (--app-new NAME)"))
		}
		existing, err := a.d.Discovery.Application(ctx, ManagedApplicationID(newName))
		if err != nil {
			return nil, internal("read application", err)
		}
		if existing != nil {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("an application named %q exists (%s): add the connector to it with application_id (--app %s)", existing.GetName(), existing.GetId(), existing.GetId()))
		}
	case *catalogv1.AddConnectorRequest_ApplicationId:
		app, err = a.d.Discovery.Application(ctx, x.ApplicationId)
		if err != nil {
			return nil, internal("read application "+x.ApplicationId, err)
		}
		if app == nil {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("application %q does not exist: list them with `accessbus apps list`", x.ApplicationId))
		}
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("name the application: new_application_name (--app-new NAME) or application_id (--app ID)"))
	}

	// The owners: the caller when none are named.
	var owners []*eventsv1.ConnectorOwner
	if len(m.GetOwnerEmails()) == 0 {
		idn, err := a.d.Discovery.Identity(ctx, c.Identity)
		if err != nil {
			return nil, internal("read your identity", err)
		}
		if idn.GetEmail() == "" {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("name the owners (owner_emails, --owner): your identity (%s) has no email address on record to make you the owner", c.Identity))
		}
		owners = []*eventsv1.ConnectorOwner{{IdentityId: c.Identity, Email: idn.GetEmail()}}
	} else if owners, err = a.resolveOwners(ctx, m.GetOwnerEmails()); err != nil {
		return nil, err
	}

	// The id, and one connector per application.
	all, err := a.d.Connectors.List(ctx)
	if err != nil {
		return nil, internal("list connectors", err)
	}
	taken := map[string]bool{}
	for _, other := range all {
		taken[other.GetId()] = true
		if app != nil && other.GetApplicationId() == app.GetId() {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("application %s (%s) already has connector %s: change that one (`accessbus connectors get %s`)", app.GetId(), app.GetName(), other.GetId(), other.GetId()))
		}
	}
	id := m.GetConnectorId()
	if id == "" {
		name := newName
		if app != nil {
			name = app.GetName()
		}
		id = freeConnectorID(name, taken)
	} else if err := subjects.ValidateConnectorID(id); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("connector_id: %w", err))
	} else if taken[id] {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("connector %q exists: choose another id (--id)", id))
	}

	if newName != "" {
		app, err = a.d.Discovery.CreateApplication(ctx, newName)
		if errors.Is(err, ErrApplicationExists) {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%w: add the connector to it with application_id (--app %s)", err, ManagedApplicationID(newName)))
		}
		if errors.Is(err, ErrInvalidName) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("new_application_name: %w", err))
		}
	} else if !app.GetManaged() {
		app, err = a.d.Discovery.MarkManaged(ctx, app.GetId())
	}
	if err != nil {
		return nil, internal("store the application", err)
	}

	// No Okta domain yet: an owner sets it with the token (SetSettings).
	rec, err := a.d.Connectors.Create(ctx, &eventsv1.Connector{Id: id, ApplicationId: app.GetId(), Owners: owners, CreatedBy: c.Identity})
	if errors.Is(err, connectors.ErrExists) {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("connector %q exists: choose another id (--id)", id))
	}
	if errors.Is(err, connectors.ErrInvalid) {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err != nil {
		return nil, internal("create connector "+id, err)
	}
	if err := a.publishConnector(ctx, subjects.CatalogConnectorCreated, subjects.VerbCreated, rec, &eventsv1.ConnectorCreated{Connector: rec}); err != nil {
		return nil, err
	}
	if err := a.publishConnector(ctx, subjects.CatalogConnectorOwnersAssigned, subjects.VerbOwnersAssigned, rec,
		&eventsv1.ConnectorOwnersAssigned{Connector: rec, NewOwners: owners, AssignedBy: c.Identity}); err != nil {
		return nil, err
	}
	a.log.Info("connector added", "connector", id, "application", app.GetId(), "by", c.Identity, "owners", ownerEmails(owners))
	return connect.NewResponse(&catalogv1.AddConnectorResponse{Connector: rec, Application: app}), nil
}

// freeConnectorID makes a connector id from an application name: lower
// case letters and digits with '-' between words, with a number appended
// when taken.
func freeConnectorID(name string, taken map[string]bool) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	base := b.String()
	if len(base) > subjects.MaxConnectorIDLen-4 {
		base = strings.TrimRight(base[:subjects.MaxConnectorIDLen-4], "-")
	}
	if base == "" {
		base = "connector"
	}
	id := base
	for n := 2; taken[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	return id
}

func ownerEmails(owners []*eventsv1.ConnectorOwner) []string {
	out := make([]string, 0, len(owners))
	for _, o := range owners {
		out = append(out, o.GetEmail())
	}
	return out
}

// SetOwners implements ConnectorServiceHandler.
func (a *API) SetOwners(ctx context.Context, req *connect.Request[catalogv1.SetOwnersRequest]) (*connect.Response[catalogv1.SetOwnersResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := a.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	if err := mayChange(c, conn); err != nil {
		return nil, err
	}
	if len(req.Msg.GetOwnerEmails()) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("owner_emails is empty: a connector needs at least one owner (--owner EMAIL)"))
	}
	owners, err := a.resolveOwners(ctx, req.Msg.GetOwnerEmails())
	if err != nil {
		return nil, err
	}
	var added []*eventsv1.ConnectorOwner
	changed := false
	rec, err := a.d.Connectors.Update(ctx, conn.GetId(), func(x *eventsv1.Connector) error {
		added = added[:0]
		for _, o := range owners {
			if !auth.IsOwner(x, o.GetIdentityId()) {
				added = append(added, o)
			}
		}
		changed = !slices.EqualFunc(x.GetOwners(), owners, func(a, b *eventsv1.ConnectorOwner) bool { return proto.Equal(a, b) })
		x.Owners = owners
		return nil
	})
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("connector %q was deleted", conn.GetId()))
	}
	if err != nil {
		return nil, internal("store the owners of "+conn.GetId(), err)
	}
	switch {
	case !changed:
		// Nothing changed: nothing to tell.
	case len(added) > 0:
		err = a.publishConnector(ctx, subjects.CatalogConnectorOwnersAssigned, subjects.VerbOwnersAssigned, rec,
			&eventsv1.ConnectorOwnersAssigned{Connector: rec, NewOwners: added, AssignedBy: c.Identity})
	default:
		err = a.publishConnector(ctx, subjects.CatalogConnectorUpdated, subjects.VerbUpdated, rec,
			&eventsv1.ConnectorUpdated{Connector: rec, ChangedFields: []string{"owners"}, UpdatedBy: c.Identity})
	}
	if err != nil {
		return nil, err
	}
	a.log.Info("connector owners set", "connector", conn.GetId(), "by", c.Identity, "owners", ownerEmails(owners))
	return connect.NewResponse(&catalogv1.SetOwnersResponse{Connector: rec}), nil
}

// settings are the validated changes of a SetSettings request.
type settings struct {
	domain      *string // normalized
	token       telemetry.Secret
	customRoles *bool
	share       *float64
	interval    *time.Duration
}

func parseSettings(m *catalogv1.SetSettingsRequest) (settings, error) {
	var s settings
	bad := func(format string, args ...any) (settings, error) {
		return settings{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
	}
	if m.OktaDomain != nil {
		if strings.TrimSpace(m.GetOktaDomain()) == "" {
			return bad("okta_domain is empty: give the org's domain, such as acme.okta.com (--domain)")
		}
		u, err := connectors.OrgURL(m.GetOktaDomain())
		if err != nil {
			return bad("okta_domain: %w", err)
		}
		d := strings.TrimPrefix(u, "https://")
		s.domain = &d
	}
	if m.ApiToken != nil {
		tok := m.GetApiToken()
		switch {
		case strings.TrimSpace(tok) == "":
			return bad("api_token is empty: paste the Okta API token (--token-stdin reads it from standard input)")
		case strings.ContainsAny(tok, " \t\r\n"):
			// Never echo the value: it may be a real token with a typo.
			return bad("api_token has spaces or line breaks: give the token alone, without the \"SSWS \" prefix")
		}
		s.token = telemetry.NewSecret(tok)
	}
	if m.SyncCustomRoles != nil {
		v := m.GetSyncCustomRoles()
		s.customRoles = &v
	}
	if m.RateLimitShare != nil {
		v := m.GetRateLimitShare()
		if math.IsNaN(v) || v < 0 || v > 1 {
			return bad("rate_limit_share %g: give a share in (0, 1], such as 0.5, or 0 for the default", v)
		}
		s.share = &v
	}
	if m.SyncInterval != nil {
		if err := m.GetSyncInterval().CheckValid(); err != nil {
			return bad("sync_interval: %w", err)
		}
		v := m.GetSyncInterval().AsDuration()
		if v < 0 || (v > 0 && v < minSyncInterval) {
			return bad("sync_interval %s: give at least %s, or 0 for the default", v, minSyncInterval)
		}
		s.interval = &v
	}
	return s, nil
}

// SetSettings implements ConnectorServiceHandler.
func (a *API) SetSettings(ctx context.Context, req *connect.Request[catalogv1.SetSettingsRequest]) (*connect.Response[catalogv1.SetSettingsResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := a.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	if err := mayChange(c, conn); err != nil {
		return nil, err
	}
	s, err := parseSettings(req.Msg)
	if err != nil {
		return nil, err
	}
	id := conn.GetId()
	domain := conn.GetOktaDomain()
	if s.domain != nil {
		domain = *s.domain
	}
	if s.token.IsSet() && domain == "" {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("the Okta domain of connector %s is not set: give okta_domain (--domain acme.okta.com) with the token, which is checked against that org", id))
	}

	// Credentials are checked when they change: a new token, or a new
	// domain for the stored token.
	token := s.token
	if !token.IsSet() && domain != conn.GetOktaDomain() && conn.GetTokenSet() {
		if token, _, err = a.d.Connectors.Token(ctx, id); err != nil {
			return nil, internal("read the stored token of "+id+" to check it against the new domain", err)
		}
	}
	var checked *eventsv1.Capabilities
	if token.IsSet() {
		share := conn.GetOptions().GetRateLimitShare()
		if s.share != nil {
			share = *s.share
		}
		var failure *credentialFailure
		checked, failure = a.checkCredentials(ctx, domain, token, share)
		if failure != nil {
			return nil, a.refuseCredentials(ctx, c, conn, failure)
		}
	}

	rec, err := a.d.Connectors.Update(ctx, id, func(x *eventsv1.Connector) error {
		if s.domain != nil {
			x.OktaDomain = *s.domain
		}
		if s.customRoles != nil || s.share != nil || s.interval != nil {
			if x.Options == nil {
				x.Options = &eventsv1.ConnectorOptions{}
			}
		}
		if s.customRoles != nil {
			x.Options.SyncCustomRoles = *s.customRoles
		}
		if s.share != nil {
			x.Options.RateLimitShare = *s.share
		}
		if s.interval != nil {
			x.Options.SyncInterval = nil
			if *s.interval > 0 {
				x.Options.SyncInterval = durationpb.New(*s.interval)
			}
		}
		if s.token.IsSet() {
			switch x.GetStatus() {
			case eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED, eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR,
				eventsv1.ConnectorStatus_CONNECTOR_STATUS_UNSPECIFIED:
				// The token works: an earlier refusal no longer holds,
				// and the sync moves the status from here.
				x.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED
				x.StatusReason = reasonTokenAccepted
			}
		}
		return nil
	})
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("connector %q was deleted", id))
	}
	if err != nil {
		return nil, internal("store the settings of "+id, err)
	}
	// The token goes last: the version it gets makes the connector due, and
	// its sync then reads the settings stored above.
	if s.token.IsSet() {
		if _, err := a.d.Connectors.SetToken(ctx, id, s.token); err != nil {
			return nil, internal("store the token of "+id, errors.New(telemetry.RedactString(err.Error(), s.token.Reveal())))
		}
		if rec, err = a.d.Connectors.Get(ctx, id); err != nil {
			return nil, internal("read connector "+id, err)
		}
	}

	changed := changedFields(conn, rec)
	if len(changed) > 0 {
		if err := a.publishConnector(ctx, subjects.CatalogConnectorUpdated, subjects.VerbUpdated, rec,
			&eventsv1.ConnectorUpdated{Connector: rec, ChangedFields: changed, UpdatedBy: c.Identity}); err != nil {
			return nil, err
		}
	}
	if rec.GetStatus() != conn.GetStatus() || rec.GetStatusReason() != conn.GetStatusReason() {
		if err := a.publishStatus(ctx, rec, conn.GetStatus()); err != nil {
			return nil, err
		}
	}
	if len(changed) > 0 {
		a.log.Info("connector settings changed", "connector", id, "by", c.Identity, "changed", changed)
	}
	return connect.NewResponse(&catalogv1.SetSettingsResponse{Connector: rec, CheckedCapabilities: checked, ChangedFields: changed}), nil
}

// changedFields names what SetSettings changed, as paths into Connector.
func changedFields(before, after *eventsv1.Connector) []string {
	var out []string
	if before.GetOktaDomain() != after.GetOktaDomain() {
		out = append(out, "okta_domain")
	}
	bo, ao := before.GetOptions(), after.GetOptions()
	if bo.GetSyncCustomRoles() != ao.GetSyncCustomRoles() {
		out = append(out, "options.sync_custom_roles")
	}
	if bo.GetRateLimitShare() != ao.GetRateLimitShare() {
		out = append(out, "options.rate_limit_share")
	}
	if !proto.Equal(bo.GetSyncInterval(), ao.GetSyncInterval()) {
		out = append(out, "options.sync_interval")
	}
	if before.GetSecretVersion() != after.GetSecretVersion() {
		out = append(out, "secret_version")
	}
	slices.Sort(out)
	return out
}

// publishStatus publishes catalog.connector.status_changed for rec.
func (a *API) publishStatus(ctx context.Context, rec *eventsv1.Connector, previous eventsv1.ConnectorStatus) error {
	return a.publishConnector(ctx, subjects.CatalogConnectorStatusChanged, subjects.VerbStatusChanged, rec,
		&eventsv1.ConnectorStatusChanged{Connector: rec, PreviousStatus: previous, ChangedAt: rec.GetUpdatedAt()})
}

// refuseCredentials records a refused credential check on the connector
// (status ERROR with the reason, when the failure says something about the
// credentials) and returns the API error.
func (a *API) refuseCredentials(ctx context.Context, c auth.Caller, conn *eventsv1.Connector, f *credentialFailure) error {
	a.log.Warn("connector credentials refused", "connector", conn.GetId(), "by", c.Identity, "reason", f.reason)
	refusal := connect.NewError(f.code, errors.New(f.reason+" (nothing was stored)"))
	if !f.setError {
		return refusal
	}
	rec, err := a.d.Connectors.Update(ctx, conn.GetId(), func(x *eventsv1.Connector) error {
		x.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR
		x.StatusReason = f.reason
		return nil
	})
	if err != nil {
		return errors.Join(refusal, internal("record the refusal on connector "+conn.GetId(), err))
	}
	if rec.GetRevision() != conn.GetRevision() {
		if err := a.publishStatus(ctx, rec, conn.GetStatus()); err != nil {
			return errors.Join(refusal, err)
		}
	}
	return refusal
}

// GetConnector implements ConnectorServiceHandler.
func (a *API) GetConnector(ctx context.Context, req *connect.Request[catalogv1.GetConnectorRequest]) (*connect.Response[catalogv1.GetConnectorResponse], error) {
	if _, err := callerOf(ctx); err != nil {
		return nil, err
	}
	conn, err := a.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	var app *eventsv1.Application
	if conn.GetApplicationId() != "" {
		if app, err = a.d.Discovery.Application(ctx, conn.GetApplicationId()); err != nil {
			return nil, internal("read application "+conn.GetApplicationId(), err)
		}
	}
	return connect.NewResponse(&catalogv1.GetConnectorResponse{Connector: conn, Application: app}), nil
}

// ListConnectors implements ConnectorServiceHandler.
func (a *API) ListConnectors(ctx context.Context, req *connect.Request[catalogv1.ListConnectorsRequest]) (*connect.Response[catalogv1.ListConnectorsResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	status := req.Msg.GetStatus()
	if _, ok := eventsv1.ConnectorStatus_name[int32(status)]; !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("status %d is not a connector status", status))
	}
	all, err := a.d.Connectors.List(ctx)
	if err != nil {
		return nil, internal("list connectors", err)
	}
	out := make([]*eventsv1.Connector, 0, len(all))
	for _, conn := range all {
		if req.Msg.GetMine() && !auth.IsOwner(conn, c.Identity) {
			continue
		}
		if status != eventsv1.ConnectorStatus_CONNECTOR_STATUS_UNSPECIFIED && conn.GetStatus() != status {
			continue
		}
		out = append(out, conn)
	}
	return connect.NewResponse(&catalogv1.ListConnectorsResponse{Connectors: out}), nil
}
