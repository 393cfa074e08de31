package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// The catalog's own writes to the Discovery bucket: managed applications
// created by hand, discovered applications becoming managed, and identities
// the platform knows before any connector's sync does (the first Super
// Administrator, a person given a role). They share the bucket, keys and
// events of the read models in discovery.go, and every write is a
// compare-and-set, so a concurrent write of the discovery consumer is
// never lost to one of these.

// maxAttempts bounds the compare-and-set retries of one change.
const maxAttempts = 16

// maxNameLen bounds an application's name.
const maxNameLen = 200

// ManagedApplicationID is the catalog id of an application created by hand
// with name: the same name (case and surrounding spaces aside) is the same
// id, so such names are unique.
func ManagedApplicationID(name string) string {
	sum := sha256.Sum256([]byte("managed/" + strings.ToLower(strings.TrimSpace(name))))
	return "app-" + hex.EncodeToString(sum[:10])
}

// CreateApplication stores a new managed application named name and
// publishes catalog.app.upserted. ErrApplicationExists when an application
// was already created with that name; ErrInvalidName for an empty or
// over-long name.
func (d *Discovery) CreateApplication(ctx context.Context, name string) (*eventsv1.Application, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxNameLen || strings.ContainsAny(name, "\r\n\t") {
		return nil, fmt.Errorf("create application: %w: use 1 to %d characters on one line", ErrInvalidName, maxNameLen)
	}
	app := &eventsv1.Application{Id: ManagedApplicationID(name), Name: name, Managed: true, UpdatedAt: timestamppb.New(d.now())}
	b, err := proto.Marshal(app)
	if err != nil {
		return nil, err
	}
	rev, err := d.kv.Create(ctx, appKey(app.GetId()), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("create application %q: %w (id %s)", name, ErrApplicationExists, app.GetId())
	}
	if err != nil {
		return nil, fmt.Errorf("create application %q: %w", name, err)
	}
	app.Revision = rev
	return app, d.publishApp(ctx, app)
}

// MarkManaged marks an application managed and publishes
// catalog.app.upserted; an application already managed is returned as it
// is. ErrApplicationNotFound when there is none.
func (d *Discovery) MarkManaged(ctx context.Context, id string) (*eventsv1.Application, error) {
	for range maxAttempts {
		e, err := d.kv.Get(ctx, appKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("mark application %s managed: %w", id, ErrApplicationNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("mark application %s managed: %w", id, err)
		}
		app := &eventsv1.Application{}
		if err := proto.Unmarshal(e.Value(), app); err != nil {
			return nil, fmt.Errorf("decode application %s: %w", id, err)
		}
		if app.GetManaged() {
			app.Revision = e.Revision()
			return app, nil
		}
		app.Managed, app.UpdatedAt, app.Revision = true, timestamppb.New(d.now()), 0
		b, err := proto.Marshal(app)
		if err != nil {
			return nil, err
		}
		rev, err := d.kv.Update(ctx, appKey(id), b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSequence(err) {
			continue // the discovery consumer changed it: apply to its version
		}
		if err != nil {
			return nil, fmt.Errorf("mark application %s managed: %w", id, err)
		}
		app.Revision = rev
		return app, d.publishApp(ctx, app)
	}
	return nil, fmt.Errorf("mark application %s managed: it kept changing; try again", id)
}

func (d *Discovery) publishApp(ctx context.Context, app *eventsv1.Application) error {
	_, err := d.bus.Publish(ctx, subjects.CatalogAppUpserted,
		subjects.MsgID(subjects.DomainCatalog, subjects.EntityApp, app.GetId(), fmt.Sprint(app.GetRevision())),
		&eventsv1.ApplicationUpserted{Application: app})
	if err != nil {
		return fmt.Errorf("publish application %s: %w", app.GetId(), err)
	}
	return nil
}

// EnsureIdentity returns the platform identity of email, creating it (with
// the email, displayName and no Okta account, so INACTIVE) when there is
// none yet and publishing catalog.identity.upserted. A connector's sync
// later links the person's Okta accounts to it.
func (d *Discovery) EnsureIdentity(ctx context.Context, email, displayName string) (*eventsv1.Identity, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if !strings.Contains(email, "@") {
		return nil, fmt.Errorf("ensure identity: %w: %q", ErrInvalidEmail, email)
	}
	id := IdentityID(email)
	for range maxAttempts {
		idn, err := d.Identity(ctx, id)
		if err != nil || idn != nil {
			return idn, err
		}
		idn = &eventsv1.Identity{Id: id, Email: email, DisplayName: strings.TrimSpace(displayName),
			Status: eventsv1.Identity_STATUS_INACTIVE, UpdatedAt: timestamppb.New(d.now())}
		b, err := proto.Marshal(idn)
		if err != nil {
			return nil, err
		}
		rev, err := d.kv.Create(ctx, identityKey(id), b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // the discovery consumer created it meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("create identity %s: %w", id, err)
		}
		idn.Revision = rev
		if _, err := d.bus.Publish(ctx, subjects.CatalogIdentityUpserted,
			subjects.MsgID(subjects.DomainCatalog, subjects.EntityIdentity, id, fmt.Sprint(rev)),
			&eventsv1.IdentityUpserted{Identity: idn}); err != nil {
			return nil, fmt.Errorf("publish identity %s: %w", id, err)
		}
		return idn, nil
	}
	return nil, fmt.Errorf("create identity %s: it kept changing; try again", id)
}

// isWrongLastSequence says whether err is JetStream's answer to an update
// at a revision that is no longer the latest.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
