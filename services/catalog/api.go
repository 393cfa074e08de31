package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/subjects"
)

// APIDeps are what the catalog's Connect API works with.
type APIDeps struct {
	Bus        *bus.Bus
	Connectors *connectors.Store
	Discovery  *Discovery
	Auth       *auth.Store
	// Log receives one line per change (never a token or a key); nil
	// discards.
	Log *slog.Logger
	// RateStore holds the Okta rate budget of the credential check: the
	// org's shared budget (Redis) when set, else one in memory.
	RateStore ratelimit.Store
	// OktaHTTPClient calls Okta for the credential check; nil is the Okta
	// client's default.
	OktaHTTPClient *http.Client
	// LookupHost resolves an Okta domain before it is called, so that a
	// domain that does not exist is told apart from an unreachable one; nil
	// is net.DefaultResolver.LookupHost.
	LookupHost func(ctx context.Context, host string) ([]string, error)
}

// API serves the catalog's Connect services (proto/accessbus/catalog/v1):
// ConnectorService, CatalogService and AdminService.
type API struct {
	d   APIDeps
	log *slog.Logger
}

var (
	_ catalogv1connect.ConnectorServiceHandler = (*API)(nil)
	_ catalogv1connect.CatalogServiceHandler   = (*API)(nil)
	_ catalogv1connect.AdminServiceHandler     = (*API)(nil)
)

// NewAPI returns the API on d.
func NewAPI(d APIDeps) (*API, error) {
	if d.Bus == nil || d.Connectors == nil || d.Discovery == nil || d.Auth == nil {
		return nil, errors.New("catalog API: Bus, Connectors, Discovery and Auth are required")
	}
	if d.RateStore == nil {
		d.RateStore = ratelimit.NewMemoryStore()
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{d: d, log: log}, nil
}

// Mount serves the three services on mux. Every call is authenticated by
// its bearer API key (auth.Interceptor): a call without a known key is
// refused with Unauthenticated before any handler runs.
func (a *API) Mount(mux *http.ServeMux, opts ...connect.HandlerOption) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(auth.Interceptor(a.d.Auth))}, opts...)
	mux.Handle(catalogv1connect.NewConnectorServiceHandler(a, opts...))
	mux.Handle(catalogv1connect.NewCatalogServiceHandler(a, opts...))
	mux.Handle(catalogv1connect.NewAdminServiceHandler(a, opts...))
}

// ---- callers and their rights

// roleHint says how a person gets a role.
const roleHint = "a Super Administrator gives it with `accessbus admin roles assign --email <email> --role connector_admin`"

func callerOf(ctx context.Context) (auth.Caller, error) {
	c, ok := auth.CallerFrom(ctx)
	if !ok || c.Identity == "" {
		return auth.Caller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("no authenticated caller: send Authorization: Bearer <API key>"))
	}
	return c, nil
}

// requireAdmin refuses a caller without Connector Administrator or Super
// Administrator.
func requireAdmin(c auth.Caller, what string) error {
	if c.Has(auth.ConnectorAdmin, auth.SuperAdmin) {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied,
		fmt.Errorf("%s takes the Connector Administrator or Super Administrator role, and your identity (%s) holds neither: %s", what, c.Identity, roleHint))
}

// requireSuper refuses a caller without Super Administrator.
func requireSuper(c auth.Caller, what string) error {
	if c.Has(auth.SuperAdmin) {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied,
		fmt.Errorf("%s takes the Super Administrator role, and your identity (%s) does not hold it", what, c.Identity))
}

// mayChange refuses a caller who is neither an owner of the connector nor
// a Super Administrator.
func mayChange(c auth.Caller, conn *eventsv1.Connector) error {
	if c.Has(auth.SuperAdmin) || auth.IsOwner(conn, c.Identity) {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied,
		fmt.Errorf("only an owner of connector %s or a Super Administrator may change it, and your identity (%s) is neither (%s)", conn.GetId(), c.Identity, auth.DescribeOwners(conn)))
}

// ---- errors

// internal turns a failure of the catalog's own storage or bus into an
// API error; the message says what was being done.
func internal(what string, err error) error {
	if errors.Is(err, connectors.ErrConflict) {
		return connect.NewError(connect.CodeAborted, fmt.Errorf("%s: %w", what, err))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("%s: %w", what, err))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: %w", what, err))
}

// ---- connectors

// connector validates id and loads the record.
func (a *API) connector(ctx context.Context, id string) (*eventsv1.Connector, error) {
	if err := subjects.ValidateConnectorID(id); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("connector_id: %w", err))
	}
	c, err := a.d.Connectors.Get(ctx, id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("connector %q does not exist: list them with `accessbus connectors list`", id))
	}
	if err != nil {
		return nil, internal("read connector "+id, err)
	}
	return c, nil
}

// publishConnector publishes a catalog.connector.<verb> event about rec
// with its deterministic message id (connector id, verb, record revision).
func (a *API) publishConnector(ctx context.Context, subject, verb string, rec *eventsv1.Connector, ev proto.Message) error {
	id := subjects.MsgID(subjects.DomainCatalog, subjects.EntityConnector, rec.GetId(), verb, strconv.FormatUint(rec.GetRevision(), 10))
	if _, err := a.d.Bus.Publish(ctx, subject, id, ev); err != nil {
		return internal("publish "+subject+" of connector "+rec.GetId(), err)
	}
	return nil
}

// ---- people

// parseEmail accepts a bare email address and returns it in lower case.
func parseEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: it is empty", ErrInvalidEmail)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", fmt.Errorf("%w: %q: give a bare address such as ann@example.com", ErrInvalidEmail, s)
	}
	if domain := s[strings.LastIndex(s, "@")+1:]; !strings.Contains(domain, ".") {
		return "", fmt.Errorf("%w: %q: the domain after @ has no dot; give an address such as ann@example.com", ErrInvalidEmail, s)
	}
	return strings.ToLower(addr.Address), nil
}

// resolveOwners turns owner emails into owners: each must be a platform
// identity holding Connector Administrator or Super Administrator. The
// refusal names every email that does not qualify and why: InvalidArgument
// when one is not an email address, else FailedPrecondition.
func (a *API) resolveOwners(ctx context.Context, emails []string) ([]*eventsv1.ConnectorOwner, error) {
	var invalid, refused []string
	var owners []*eventsv1.ConnectorOwner
	seen := map[string]bool{}
	for _, raw := range emails {
		email, err := parseEmail(raw)
		if err != nil {
			invalid = append(invalid, err.Error())
			continue
		}
		id := IdentityID(email)
		if seen[id] {
			continue
		}
		seen[id] = true
		idn, err := a.d.Discovery.Identity(ctx, id)
		if err != nil {
			return nil, internal("read identity of "+email, err)
		}
		if idn == nil {
			refused = append(refused, fmt.Sprintf("%s: no platform identity has this email; the person must be a user of an Okta org a connector syncs, or be given a platform role first (`accessbus admin roles assign --email %s --role connector_admin`)", email, email))
			continue
		}
		roles, err := a.d.Auth.Roles(ctx, id)
		if err != nil {
			return nil, internal("read roles of "+email, err)
		}
		if !(auth.Caller{Roles: roles}).Has(auth.ConnectorAdmin, auth.SuperAdmin) {
			refused = append(refused, fmt.Sprintf("%s does not hold the Connector Administrator or Super Administrator role, which an owner needs: %s",
				email, strings.ReplaceAll(roleHint, "<email>", email)))
			continue
		}
		owners = append(owners, &eventsv1.ConnectorOwner{IdentityId: id, Email: idn.GetEmail()})
	}
	if len(invalid) > 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("owner_emails: %s", strings.Join(append(invalid, refused...), "; ")))
	}
	if len(refused) > 0 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("owners refused: %s", strings.Join(refused, "; ")))
	}
	return owners, nil
}
