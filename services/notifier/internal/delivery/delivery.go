// Package delivery sends each of the notifier's emails once: it keeps a
// durable record per email (source event, template and recipient) in the
// JetStream KV bucket NOTIFY_SENT, claims the record before talking to SMTP
// and marks it sent or failed afterwards, applies the per-recipient rate
// limit, refuses addresses that do not parse, and publishes
// notify.email.sent and notify.email.failed.
//
// The window that remains: a process that dies after the SMTP server
// accepted an email and before the "sent" mark is stored leaves a claim
// behind. Once the claim is older than ClaimTTL another delivery takes it
// over and sends again, so in that window an email can arrive twice (with
// the same Message-ID, which lets mail clients fold the copies). SMTP offers
// no way to close it: the server's 250 after DATA can be lost with the
// connection, so no sender can know whether a message it handed over was
// accepted. Choosing to resend rather than to drop keeps "the owner is told"
// over "the owner is never told twice".
package delivery

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/services/notifier/internal/mailer"
)

// Bucket is the KV bucket of email records.
const Bucket = "NOTIFY_SENT"

// Defaults of Config.
const (
	DefaultClaimTTL    = 2 * time.Minute
	DefaultMaxAttempts = 8
	DefaultRetention   = 45 * 24 * time.Hour
	DefaultRatePerHour = 20
)

// Record states.
const (
	// StateClaimed: a delivery is talking to SMTP (or died doing so).
	StateClaimed = "claimed"
	// StateRetrying: the last attempt failed in a way a later one may not.
	StateRetrying = "retrying"
	// StateSent: the SMTP server accepted the email.
	StateSent = "sent"
	// StateFailed: the email will not be sent (5xx, invalid address, rate
	// limit, attempts used up).
	StateFailed = "failed"
)

// ErrClaimed is returned by Deliver while another delivery holds a fresh
// claim on the email: try again later.
var ErrClaimed = errors.New("the email is being sent by another delivery")

// Email is one email to one recipient, rendered.
type Email struct {
	// EventKey is unique per source event, template and recipient; it is
	// EmailSent.event_key and the record's identity.
	EventKey    string
	Template    string
	ConnectorID string
	// To is the recipient's address as the directory or connector gave it.
	To      string
	Subject string
	Text    string
	HTML    string
}

// Sender hands an email to SMTP; a failure is a *mailer.Error.
type Sender interface {
	Send(ctx context.Context, m mailer.Message) error
}

// Record is what NOTIFY_SENT keeps of one email (JSON).
type Record struct {
	EventKey    string    `json:"event_key"`
	Template    string    `json:"template"`
	Recipient   string    `json:"recipient"`
	ConnectorID string    `json:"connector_id,omitempty"`
	Subject     string    `json:"subject"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	ClaimedAt   time.Time `json:"claimed_at"`
	ClaimedBy   string    `json:"claimed_by"`
	MessageID   string    `json:"message_id,omitempty"`
	SentAt      time.Time `json:"sent_at,omitzero"`
	FailedAt    time.Time `json:"failed_at,omitzero"`
	// Code and Reason describe the last failure (SMTP reply code, 0 when no
	// server answered, and text).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Published is set once notify.email.sent or the final
	// notify.email.failed is stored on the bus.
	Published bool `json:"published,omitempty"`
}

// Config tunes a Deliverer.
type Config struct {
	// RatePerHour is how many emails one recipient gets in any hour at most.
	RatePerHour int
	// MaxAttempts bounds the SMTP attempts of one email that fail
	// transiently; the last one records the email as failed.
	MaxAttempts int
	// ClaimTTL is how long a claim stands before another delivery may take
	// it over (the resend window of the package doc). Keep it above the
	// longest SMTP exchange.
	ClaimTTL time.Duration
	// Retention is how long records are kept; longer than any source stream
	// keeps its events, so that a replay never mails twice.
	Retention time.Duration
	// MessageIDDomain is the right-hand side of Message-IDs.
	MessageIDDomain string
	// Storage and Replicas of the bucket.
	Storage  jetstream.StorageType
	Replicas int
}

// Deliverer sends emails once. It is safe for concurrent use.
type Deliverer struct {
	kv       jetstream.KeyValue
	bus      *bus.Bus
	sender   Sender
	log      *slog.Logger
	cfg      Config
	limiter  *Limiter
	instance string
	now      func() time.Time

	// pending holds records this process could not store after deciding
	// them (NATS unreachable for a moment): a redelivery stores them
	// instead of sending again.
	pendingMu sync.Mutex
	pending   map[string]Record
}

// Open declares the bucket and returns a Deliverer.
func Open(ctx context.Context, js jetstream.JetStream, b *bus.Bus, sender Sender, log *slog.Logger, cfg Config) (*Deliverer, error) {
	if cfg.RatePerHour <= 0 {
		cfg.RatePerHour = DefaultRatePerHour
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MessageIDDomain == "" {
		cfg.MessageIDDomain = "accessbus.invalid"
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "accessbus notifier: one record per email (event, template, recipient): claimed, retrying, sent or failed",
		History:     1,
		TTL:         cfg.Retention,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", Bucket, err)
	}
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return &Deliverer{
		kv: kv, bus: b, sender: sender, log: log, cfg: cfg,
		limiter:  NewLimiter(cfg.RatePerHour, time.Hour, time.Now),
		instance: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(rnd[:])),
		now:      time.Now,
		pending:  map[string]Record{},
	}, nil
}

// Key is the NOTIFY_SENT key of an event key.
func Key(eventKey string) string {
	sum := sha256.Sum256([]byte(eventKey))
	return "email." + hex.EncodeToString(sum[:16])
}

// Get returns the record of an email, or nil.
func (d *Deliverer) Get(ctx context.Context, eventKey string) (*Record, error) {
	r, _, err := d.get(ctx, Key(eventKey))
	return r, err
}

func (d *Deliverer) get(ctx context.Context, key string) (*Record, uint64, error) {
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read email record %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("decode email record %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

func (d *Deliverer) write(ctx context.Context, key string, r Record, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode email record: %w", err)
	}
	if rev == 0 {
		return d.kv.Create(ctx, key, b)
	}
	return d.kv.Update(ctx, key, b, rev)
}

// Deliver sends e unless its record says it was sent or failed for good.
// nil means done (now or before); an error means try again later
// (ErrClaimed while another delivery holds a fresh claim).
func (d *Deliverer) Deliver(ctx context.Context, e Email) error {
	key := Key(e.EventKey)
	for range 16 {
		rec, rev, err := d.get(ctx, key)
		if err != nil {
			return err
		}
		now := d.now().UTC()
		var next Record
		switch {
		case rec == nil:
			next = Record{EventKey: e.EventKey, Template: e.Template, Recipient: e.To, ConnectorID: e.ConnectorID,
				Subject: e.Subject, State: StateClaimed, Attempts: 1, ClaimedAt: now, ClaimedBy: d.instance}
		case rec.State == StateSent || rec.State == StateFailed:
			if !rec.Published {
				return d.publishFinal(ctx, key, *rec, rev)
			}
			return nil
		case rec.State == StateClaimed:
			if p, ok := d.takePending(key); ok && rec.ClaimedBy == d.instance {
				if _, err := d.write(ctx, key, p, rev); err != nil && !isConflict(err) {
					d.putPending(key, p)
					return fmt.Errorf("store the outcome of email %s: %w", e.EventKey, err)
				}
				continue
			}
			if age := now.Sub(rec.ClaimedAt); age < d.cfg.ClaimTTL {
				// Usually done within a second; the bus's growing delay
				// brings the event back soon, and again until the claim
				// ends or goes stale.
				return fmt.Errorf("email %s: %w (%s, for %s more at most)", e.EventKey, ErrClaimed, rec.ClaimedBy, (d.cfg.ClaimTTL - age).Round(time.Second))
			}
			d.log.Warn("taking over an email whose sender stopped before recording the outcome; it may arrive twice",
				"event_key", e.EventKey, "template", e.Template, "claimed_by", rec.ClaimedBy, "claimed_at", rec.ClaimedAt)
			next = *rec
			next.State, next.Attempts, next.ClaimedAt, next.ClaimedBy = StateClaimed, rec.Attempts+1, now, d.instance
		case rec.State == StateRetrying:
			next = *rec
			next.State, next.Attempts, next.ClaimedAt, next.ClaimedBy = StateClaimed, rec.Attempts+1, now, d.instance
		default:
			return bus.Permanentf("email %s: record in unknown state %q", e.EventKey, rec.State)
		}
		rev, err = d.write(ctx, key, next, rev)
		if isConflict(err) {
			continue // another delivery moved it first: look again
		}
		if err != nil {
			return fmt.Errorf("claim email %s: %w", e.EventKey, err)
		}
		return d.send(ctx, key, next, rev, e)
	}
	return fmt.Errorf("email %s: its record kept changing", e.EventKey)
}

// send makes one attempt under a claim and records its outcome.
func (d *Deliverer) send(ctx context.Context, key string, rec Record, rev uint64, e Email) error {
	log := d.log.With("event_key", e.EventKey, "template", e.Template, "connector", e.ConnectorID, "attempt", rec.Attempts)
	addr, err := mail.ParseAddress(strings.TrimSpace(e.To))
	if err != nil {
		log.Warn("email not sent: the recipient address is invalid", "to", e.To, "err", err)
		return d.fail(ctx, key, rec, rev, 0, fmt.Sprintf("invalid recipient address %q: %v", e.To, err))
	}
	to := strings.ToLower(addr.Address)
	rec.Recipient = to
	slot, ok := d.limiter.Reserve(to)
	if !ok {
		log.Warn("email not sent: the recipient's rate limit is used up", "to", to, "per_hour", d.cfg.RatePerHour)
		return d.fail(ctx, key, rec, rev, 0, fmt.Sprintf("rate limit: %s already got %d emails in the last hour (ACCESSBUS_MAIL_PER_RECIPIENT_PER_HOUR)", to, d.cfg.RatePerHour))
	}
	msgID := strings.TrimPrefix(Key(e.EventKey), "email.") + "@" + d.cfg.MessageIDDomain
	err = d.sender.Send(ctx, mailer.Message{To: to, Subject: e.Subject, Text: e.Text, HTML: e.HTML, MessageID: msgID, Date: d.now()})
	if err == nil {
		rec.State, rec.MessageID, rec.SentAt = StateSent, "<"+msgID+">", d.now().UTC()
		rec.Code, rec.Reason = 0, ""
		log.Info("email sent", "to", to, "message_id", rec.MessageID)
		return d.finish(ctx, key, rec, rev)
	}
	d.limiter.Release(to, slot)
	var me *mailer.Error
	if !errors.As(err, &me) {
		me = &mailer.Error{Message: err.Error()}
	}
	if me.Permanent {
		log.Warn("email refused by the SMTP server; not retried", "to", to, "code", me.Code, "reply", me.Message)
		return d.fail(ctx, key, rec, rev, me.Code, me.Message)
	}
	if rec.Attempts >= d.cfg.MaxAttempts {
		log.Warn("email not sent: giving up after the last attempt", "to", to, "code", me.Code, "reply", me.Message)
		return d.fail(ctx, key, rec, rev, me.Code, fmt.Sprintf("gave up after %d attempts; the last: %s", rec.Attempts, me.Message))
	}
	rec.State, rec.Code, rec.Reason, rec.FailedAt = StateRetrying, me.Code, me.Message, d.now().UTC()
	if _, err := d.write(ctx, key, rec, rev); err != nil && !isConflict(err) {
		d.putPending(key, rec)
	}
	d.publishFailed(ctx, rec, false)
	log.Warn("email not sent yet; retrying later", "to", to, "code", me.Code, "reply", me.Message)
	return fmt.Errorf("email %s to %s: attempt %d: %w", e.EventKey, to, rec.Attempts, me)
}

// fail records the email as failed for good and publishes it.
func (d *Deliverer) fail(ctx context.Context, key string, rec Record, rev uint64, code int, reason string) error {
	rec.State, rec.Code, rec.Reason, rec.FailedAt = StateFailed, code, reason, d.now().UTC()
	return d.finish(ctx, key, rec, rev)
}

// finish stores a final record and publishes its event.
func (d *Deliverer) finish(ctx context.Context, key string, rec Record, rev uint64) error {
	newRev, err := d.write(ctx, key, rec, rev)
	if isConflict(err) {
		// Our claim went stale while SMTP took its time and another
		// delivery took it over: it records the outcome.
		d.log.Warn("email record was taken over during the attempt", "event_key", rec.EventKey)
		return nil
	}
	if err != nil {
		d.putPending(key, rec)
		return fmt.Errorf("record the outcome of email %s: %w", rec.EventKey, err)
	}
	return d.publishFinal(ctx, key, rec, newRev)
}

// publishFinal publishes notify.email.sent or the final notify.email.failed
// and notes that it did.
func (d *Deliverer) publishFinal(ctx context.Context, key string, rec Record, rev uint64) error {
	var err error
	if rec.State == StateSent {
		ev := &eventsv1.EmailSent{EventKey: rec.EventKey, Template: rec.Template, Recipients: []string{rec.Recipient},
			Subject: rec.Subject, MessageId: rec.MessageID, ConnectorId: rec.ConnectorID, SentAt: timestamppb.New(rec.SentAt)}
		_, err = d.bus.Publish(ctx, subjects.NotifyEmailSent, subjects.MsgID("notify", "email", rec.EventKey, "sent"), ev)
	} else {
		err = d.publishFailed(ctx, rec, true)
	}
	if err != nil {
		return fmt.Errorf("publish the outcome of email %s: %w", rec.EventKey, err)
	}
	rec.Published = true
	if _, err := d.write(ctx, key, rec, rev); err != nil {
		// The event is on the bus; a redelivery would publish it again under
		// the same message id, which the stream drops within its window.
		d.log.Debug("could not note that the email's event was published", "event_key", rec.EventKey, "err", err)
	}
	return nil
}

func (d *Deliverer) publishFailed(ctx context.Context, rec Record, permanent bool) error {
	ev := &eventsv1.EmailFailed{EventKey: rec.EventKey, Template: rec.Template, Recipients: []string{rec.Recipient},
		Subject: rec.Subject, SmtpCode: int32(rec.Code), SmtpMessage: rec.Reason, Permanent: permanent,
		Attempt: int32(rec.Attempts), ConnectorId: rec.ConnectorID, FailedAt: timestamppb.New(rec.FailedAt)}
	_, err := d.bus.Publish(ctx, subjects.NotifyEmailFailed,
		subjects.MsgID("notify", "email", rec.EventKey, "failed", strconv.Itoa(rec.Attempts)), ev)
	if err != nil && !permanent {
		// Only informational for an attempt that will be retried.
		d.log.Warn("could not publish notify.email.failed", "event_key", rec.EventKey, "err", err)
	}
	return err
}

func (d *Deliverer) putPending(key string, r Record) {
	d.pendingMu.Lock()
	defer d.pendingMu.Unlock()
	d.pending[key] = r
}

func (d *Deliverer) takePending(key string) (Record, bool) {
	d.pendingMu.Lock()
	defer d.pendingMu.Unlock()
	r, ok := d.pending[key]
	delete(d.pending, key)
	return r, ok
}
