package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Discovery: the catalog's read models of what the sync finds in each Okta
// org. Every Okta connector is an identity provider here: its users become
// platform identities (one per email address, linking the person's Okta
// accounts across connectors), and its apps become catalog applications,
// unmanaged until someone attaches a connector to them. Both follow the
// ACCESS stream (resource.user.* and resource.app.*) with one durable
// consumer, in order, and publish catalog.identity.* and catalog.app.*.

// DiscoveryBucket is the KV bucket of identities, applications and the
// links from Okta users to identities.
const DiscoveryBucket = "CATALOG_DISCOVERY"

// DiscoveryConsumer is the durable name of the discovery consumer.
const DiscoveryConsumer = "catalog-discovery"

// IdentityID is the platform identity id of an email address: the same
// person (email) across connectors is one identity.
func IdentityID(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "idn-" + hex.EncodeToString(sum[:10])
}

// ApplicationID is the catalog id of an Okta app discovered through a
// connector.
func ApplicationID(connector, oktaAppID string) string {
	sum := sha256.Sum256([]byte(connector + "/" + oktaAppID))
	return "app-" + hex.EncodeToString(sum[:10])
}

// Discovery keeps identities and applications.
type Discovery struct {
	kv  jetstream.KeyValue
	bus *bus.Bus
	log *slog.Logger
	now func() time.Time
}

// OpenDiscovery declares the bucket and returns the read models.
func OpenDiscovery(ctx context.Context, b *bus.Bus, replicas int, storage jetstream.StorageType, log *slog.Logger) (*Discovery, error) {
	if replicas == 0 {
		replicas = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := b.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: DiscoveryBucket, Description: "catalog: platform identities, discovered applications, Okta user links",
		History: 1, Replicas: replicas, Storage: storage,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", DiscoveryBucket, err)
	}
	return &Discovery{kv: kv, bus: b, log: log, now: time.Now}, nil
}

// Follow consumes the user and app events of every connector until the
// subscription is stopped.
func (d *Discovery) Follow(ctx context.Context) (*bus.Subscription, error) {
	sub, err := bus.ConsumeRaw(ctx, d.bus, bus.ConsumerSpec{
		Stream: subjects.StreamAccess, Durable: DiscoveryConsumer,
		Description: "catalog: platform identities and applications from the orgs' users and apps",
		Filter:      []string{"access.*.resource.user.*", "access.*.resource.app.*"},
		// In order: a user's or app's events must apply one after another.
		Concurrency: 1, Prefetch: 256,
	}, d.handle)
	if err != nil {
		return nil, fmt.Errorf("follow users and apps: %w", err)
	}
	return sub, nil
}

func (d *Discovery) handle(ctx context.Context, m *bus.RawMessage) error {
	p, err := subjects.Parse(m.Subject)
	if err != nil || p.Connector == "" {
		return bus.Permanentf("discovery: not an access event subject: %s", m.Subject)
	}
	switch {
	case strings.HasSuffix(m.Subject, ".upserted"):
		ev := &eventsv1.ResourceUpserted{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			return fmt.Errorf("%w: %s: %w", bus.ErrUndecodable, m.Subject, err)
		}
		if u := ev.GetResource().GetUser(); u != nil {
			return d.userUpserted(ctx, p.Connector, u)
		}
		if a := ev.GetResource().GetApp(); a != nil {
			return d.appUpserted(ctx, p.Connector, a)
		}
	case strings.HasSuffix(m.Subject, ".deleted"):
		ev := &eventsv1.ResourceDeleted{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			return fmt.Errorf("%w: %s: %w", bus.ErrUndecodable, m.Subject, err)
		}
		switch ev.GetKind() {
		case eventsv1.ResourceKind_RESOURCE_KIND_USER:
			return d.userDeleted(ctx, p.Connector, ev.GetId())
		case eventsv1.ResourceKind_RESOURCE_KIND_APP:
			return d.appDeleted(ctx, p.Connector, ev.GetId())
		}
	}
	return nil
}

// ---- identities

// link is what the catalog remembers of one Okta user.
type link struct {
	Identity string `json:"identity"`
	Active   bool   `json:"active"`
}

func linkKey(connector, userID string) string { return "user." + connector + "." + userID }
func identityKey(id string) string            { return "identity." + id }
func appKey(id string) string                 { return "app." + id }

// activeStatus says whether an Okta user status lets the person work.
func activeStatus(s eventsv1.User_Status) bool {
	switch s {
	case eventsv1.User_STATUS_ACTIVE, eventsv1.User_STATUS_PASSWORD_EXPIRED, eventsv1.User_STATUS_LOCKED_OUT, eventsv1.User_STATUS_RECOVERY:
		return true
	}
	return false
}

func (d *Discovery) getLink(ctx context.Context, connector, userID string) (*link, error) {
	e, err := d.kv.Get(ctx, linkKey(connector, userID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l link
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.Key(), err)
	}
	return &l, nil
}

func (d *Discovery) putLink(ctx context.Context, connector, userID string, l link) error {
	b, _ := json.Marshal(l)
	_, err := d.kv.Put(ctx, linkKey(connector, userID), b)
	return err
}

// Identity returns a platform identity; nil when there is none.
func (d *Discovery) Identity(ctx context.Context, id string) (*eventsv1.Identity, error) {
	e, err := d.kv.Get(ctx, identityKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identity %s: %w", id, err)
	}
	idn := &eventsv1.Identity{}
	if err := proto.Unmarshal(e.Value(), idn); err != nil {
		return nil, fmt.Errorf("decode identity %s: %w", id, err)
	}
	idn.Revision = e.Revision()
	return idn, nil
}

// saveIdentity stores idn with its status recomputed from its links, and
// publishes catalog.identity.upserted when it changed.
func (d *Discovery) saveIdentity(ctx context.Context, idn *eventsv1.Identity, before *eventsv1.Identity) error {
	status := eventsv1.Identity_STATUS_INACTIVE
	for _, lu := range idn.GetOktaUsers() {
		l, err := d.getLink(ctx, lu.GetConnectorId(), lu.GetOktaUserId())
		if err != nil {
			return err
		}
		if l != nil && l.Active {
			status = eventsv1.Identity_STATUS_ACTIVE
		}
	}
	idn.Status = status
	slices.SortFunc(idn.OktaUsers, func(a, b *eventsv1.LinkedOktaUser) int {
		return strings.Compare(a.GetConnectorId()+"/"+a.GetOktaUserId(), b.GetConnectorId()+"/"+b.GetOktaUserId())
	})
	if before != nil {
		cmp := proto.CloneOf(before)
		cmp.UpdatedAt, cmp.Revision = idn.GetUpdatedAt(), idn.GetRevision()
		if proto.Equal(cmp, idn) {
			return nil
		}
	}
	idn.UpdatedAt = timestamppb.New(d.now())
	idn.Revision = 0
	b, err := proto.Marshal(idn)
	if err != nil {
		return err
	}
	rev, err := d.kv.Put(ctx, identityKey(idn.GetId()), b)
	if err != nil {
		return fmt.Errorf("store identity %s: %w", idn.GetId(), err)
	}
	idn.Revision = rev
	_, err = d.bus.Publish(ctx, subjects.CatalogIdentityUpserted,
		subjects.MsgID(subjects.DomainCatalog, subjects.EntityIdentity, idn.GetId(), fmt.Sprint(rev)), &eventsv1.IdentityUpserted{Identity: idn})
	return err
}

func displayName(u *eventsv1.User) string {
	if u.GetDisplayName() != "" {
		return u.GetDisplayName()
	}
	return strings.TrimSpace(u.GetFirstName() + " " + u.GetLastName())
}

func (d *Discovery) userUpserted(ctx context.Context, connector string, u *eventsv1.User) error {
	email := strings.ToLower(strings.TrimSpace(u.GetEmail()))
	if email == "" {
		email = strings.ToLower(strings.TrimSpace(u.GetLogin()))
	}
	if !strings.Contains(email, "@") {
		d.log.Info("Okta user without an email address: no platform identity", "connector", connector, "user", u.GetId())
		return nil
	}
	id := IdentityID(email)
	old, err := d.getLink(ctx, connector, u.GetId())
	if err != nil {
		return err
	}
	if err := d.putLink(ctx, connector, u.GetId(), link{Identity: id, Active: activeStatus(u.GetStatus())}); err != nil {
		return err
	}
	if old != nil && old.Identity != id {
		// The email changed: the account moves to the other person.
		if err := d.unlink(ctx, old.Identity, connector, u.GetId()); err != nil {
			return err
		}
	}
	before, err := d.Identity(ctx, id)
	if err != nil {
		return err
	}
	idn := &eventsv1.Identity{Id: id, Email: email}
	if before != nil {
		idn = proto.CloneOf(before)
	}
	if name := displayName(u); name != "" {
		idn.DisplayName = name
	}
	if !slices.ContainsFunc(idn.GetOktaUsers(), func(l *eventsv1.LinkedOktaUser) bool {
		return l.GetConnectorId() == connector && l.GetOktaUserId() == u.GetId()
	}) {
		idn.OktaUsers = append(idn.OktaUsers, &eventsv1.LinkedOktaUser{ConnectorId: connector, OktaUserId: u.GetId()})
	}
	return d.saveIdentity(ctx, idn, before)
}

// unlink removes an Okta user from an identity. An identity without
// accounts stays (its roles and keys may matter), INACTIVE.
func (d *Discovery) unlink(ctx context.Context, id, connector, userID string) error {
	before, err := d.Identity(ctx, id)
	if err != nil || before == nil {
		return err
	}
	idn := proto.CloneOf(before)
	idn.OktaUsers = slices.DeleteFunc(idn.OktaUsers, func(l *eventsv1.LinkedOktaUser) bool {
		return l.GetConnectorId() == connector && l.GetOktaUserId() == userID
	})
	return d.saveIdentity(ctx, idn, before)
}

func (d *Discovery) userDeleted(ctx context.Context, connector, userID string) error {
	old, err := d.getLink(ctx, connector, userID)
	if err != nil || old == nil {
		return err
	}
	if err := d.kv.Delete(ctx, linkKey(connector, userID)); err != nil {
		return err
	}
	return d.unlink(ctx, old.Identity, connector, userID)
}

// ---- applications

// scimProvisioned says whether Okta provisions accounts into the app:
// SCIM provisioning or any PUSH_* feature.
func scimProvisioned(a *eventsv1.App) bool {
	if a.GetScimProvisioned() {
		return true
	}
	return slices.ContainsFunc(a.GetFeatures(), func(f string) bool {
		return f == "SCIM_PROVISIONING" || strings.HasPrefix(f, "PUSH_")
	})
}

// Application returns a catalog application; nil when there is none.
func (d *Discovery) Application(ctx context.Context, id string) (*eventsv1.Application, error) {
	e, err := d.kv.Get(ctx, appKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read application %s: %w", id, err)
	}
	app := &eventsv1.Application{}
	if err := proto.Unmarshal(e.Value(), app); err != nil {
		return nil, fmt.Errorf("decode application %s: %w", id, err)
	}
	app.Revision = e.Revision()
	return app, nil
}

// Applications lists the catalog's applications, sorted by name then id.
func (d *Discovery) Applications(ctx context.Context) ([]*eventsv1.Application, error) {
	w, err := d.kv.Watch(ctx, "app.*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var out []*eventsv1.Application
	for e := range w.Updates() {
		if e == nil {
			break
		}
		app := &eventsv1.Application{}
		if err := proto.Unmarshal(e.Value(), app); err != nil {
			return nil, fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		app.Revision = e.Revision()
		out = append(out, app)
	}
	slices.SortFunc(out, func(a, b *eventsv1.Application) int {
		if c := strings.Compare(strings.ToLower(a.GetName()), strings.ToLower(b.GetName())); c != 0 {
			return c
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	return out, nil
}

func (d *Discovery) appUpserted(ctx context.Context, connector string, a *eventsv1.App) error {
	id := ApplicationID(connector, a.GetId())
	before, err := d.Application(ctx, id)
	if err != nil {
		return err
	}
	app := &eventsv1.Application{Id: id, SourceConnectorId: connector, OktaAppId: a.GetId()}
	if before != nil {
		app = proto.CloneOf(before) // managed, counts and the rest stay
	}
	app.Name, app.SignOnMode, app.Features = a.GetLabel(), a.GetSignOnMode(), slices.Clone(a.GetFeatures())
	app.ScimProvisioned, app.Status = scimProvisioned(a), a.GetStatus()
	if before != nil {
		cmp := proto.CloneOf(app)
		cmp.UpdatedAt, cmp.Revision = before.GetUpdatedAt(), before.GetRevision()
		if proto.Equal(cmp, before) {
			return nil
		}
	}
	app.UpdatedAt, app.Revision = timestamppb.New(d.now()), 0
	b, err := proto.Marshal(app)
	if err != nil {
		return err
	}
	// Compare-and-set: an API call (MarkManaged) may change the record
	// meanwhile; then this event is handled again on the new record.
	var rev uint64
	if before == nil {
		rev, err = d.kv.Create(ctx, appKey(id), b)
	} else {
		rev, err = d.kv.Update(ctx, appKey(id), b, before.GetRevision())
	}
	if err != nil {
		return fmt.Errorf("store application %s (retried on the current record): %w", id, err)
	}
	if before == nil {
		// Its assignments may have been counted before it existed.
		if err := markRecount(ctx, d.kv, id); err != nil {
			return err
		}
	}
	app.Revision = rev
	_, err = d.bus.Publish(ctx, subjects.CatalogAppUpserted,
		subjects.MsgID(subjects.DomainCatalog, subjects.EntityApp, id, fmt.Sprint(rev)), &eventsv1.ApplicationUpserted{Application: app})
	return err
}

func (d *Discovery) appDeleted(ctx context.Context, connector, oktaAppID string) error {
	id := ApplicationID(connector, oktaAppID)
	before, err := d.Application(ctx, id)
	if err != nil || before == nil {
		return err
	}
	if err := d.kv.Delete(ctx, appKey(id)); err != nil {
		return err
	}
	_, err = d.bus.Publish(ctx, subjects.CatalogAppDeleted,
		subjects.MsgID(subjects.DomainCatalog, subjects.EntityApp, id, "deleted", fmt.Sprint(before.GetRevision())),
		&eventsv1.ApplicationDeleted{Application: before, DeletedAt: timestamppb.New(d.now())})
	return err
}
