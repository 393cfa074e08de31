package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/notifier/internal/mailer"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

const wait = 10 * time.Second

type env struct {
	js      jetstream.JetStream
	bus     *bus.Bus
	capture *mailcapture.Server
	smtp    *mailer.SMTP
	notify  *testkit.Recorder
	logs    *testkit.Buffer
	reject  atomic.Pointer[func(to string) *mailcapture.Reply]
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{js: js, bus: b, logs: &testkit.Buffer{}}
	e.capture, err = mailcapture.Start(ctx, "127.0.0.1:0", js, mailcapture.Options{Storage: jetstream.MemoryStorage,
		Reject: func(_, to string) *mailcapture.Reply {
			if f := e.reject.Load(); f != nil {
				return (*f)(to)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.capture.Close(ctx) })
	e.smtp, err = mailer.New(mailer.Config{Addr: e.capture.Addr(), TLS: mailer.TLSNone, From: "accessbus <ab@example.test>", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.notify = testkit.Record(t, js, subjects.StreamNotify, "notify.>", true)
	return e
}

func (e *env) deliverer(t *testing.T, cfg Config) *Deliverer {
	t.Helper()
	cfg.Storage = jetstream.MemoryStorage
	cfg.MessageIDDomain = "example.test"
	d, err := Open(context.Background(), e.js, e.bus, e.smtp, slog.New(slog.NewJSONHandler(e.logs, nil)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) mails(t *testing.T) []mailcapture.Message {
	t.Helper()
	msgs, err := e.capture.Store().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func email(key, to string) Email {
	return Email{EventKey: key, Template: "connector_setup", ConnectorID: "c1", To: to,
		Subject: "Subject " + key, Text: "text body", HTML: "<p>html body</p>"}
}

// events decodes what the notifier published, by subject.
func (e *env) events(t *testing.T) (sent []*eventsv1.EmailSent, failed []*eventsv1.EmailFailed) {
	t.Helper()
	for _, m := range e.notify.Messages() {
		switch m.Subject() {
		case subjects.NotifyEmailSent:
			ev := &eventsv1.EmailSent{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, ev)
		case subjects.NotifyEmailFailed:
			ev := &eventsv1.EmailFailed{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			failed = append(failed, ev)
		}
	}
	return sent, failed
}

func TestDeliverSendsOnceAcrossDeliverers(t *testing.T) {
	e := newEnv(t)
	// Two deliverers stand for two replicas, or a process before and after
	// a restart: they share only the bucket.
	a, b := e.deliverer(t, Config{}), e.deliverer(t, Config{})
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range 8 {
		d := a
		if i%2 == 1 {
			d = b
		}
		wg.Go(func() {
			if err := d.Deliver(ctx, email("ev/1/connector_setup/bob@example.test", "Bob@Example.test")); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// The losers of the race were told to come back later; coming back
	// sends nothing.
	for _, err := range errs {
		if !errors.Is(err, ErrClaimed) {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	for _, d := range []*Deliverer{a, b} {
		if err := d.Deliver(ctx, email("ev/1/connector_setup/bob@example.test", "bob@example.test")); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.mails(t)
	if len(msgs) != 1 || msgs[0].To[0] != "bob@example.test" {
		t.Fatalf("captured %+v", msgs)
	}
	p, err := mailcapture.Parse(msgs[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != "text body" || p.HTML != "<p>html body</p>" || p.Header.Get("Auto-Submitted") != "auto-generated" ||
		!strings.HasSuffix(p.Header.Get("Message-Id"), "@example.test>") {
		t.Fatalf("message %+v", p)
	}
	rec, err := a.Get(ctx, "ev/1/connector_setup/bob@example.test")
	if err != nil || rec.State != StateSent || !rec.Published || rec.MessageID != p.Header.Get("Message-Id") {
		t.Fatalf("record %+v, %v", rec, err)
	}
	e.notify.WaitFor(t, 1, wait)
	sent, failed := e.events(t)
	if len(sent) != 1 || len(failed) != 0 || sent[0].GetEventKey() != "ev/1/connector_setup/bob@example.test" ||
		sent[0].GetRecipients()[0] != "bob@example.test" || sent[0].GetMessageId() != rec.MessageID || sent[0].GetConnectorId() != "c1" {
		t.Fatalf("events sent %v failed %v", sent, failed)
	}
}

func (e *env) putRecord(t *testing.T, d *Deliverer, r Record) {
	t.Helper()
	b, _ := json.Marshal(r)
	if _, err := d.kv.Put(context.Background(), Key(r.EventKey), b); err != nil {
		t.Fatal(err)
	}
}

func TestStaleClaimIsTakenOverAndFreshOneWaited(t *testing.T) {
	e := newEnv(t)
	d := e.deliverer(t, Config{ClaimTTL: time.Minute})
	ctx := context.Background()
	// A claim from another process a moment ago: it may be sending now.
	e.putRecord(t, d, Record{EventKey: "k-fresh", State: StateClaimed, Attempts: 1, ClaimedAt: time.Now(), ClaimedBy: "other"})
	err := d.Deliver(ctx, email("k-fresh", "bob@example.test"))
	if !errors.Is(err, ErrClaimed) || !strings.Contains(err.Error(), "other") || bus.IsPermanent(err) {
		t.Fatalf("Deliver under a fresh claim: %v", err)
	}
	// A claim older than ClaimTTL: its process died before recording the
	// outcome; the email is sent (again, perhaps) and the takeover logged.
	e.putRecord(t, d, Record{EventKey: "k-stale", State: StateClaimed, Attempts: 1, ClaimedAt: time.Now().Add(-time.Hour), ClaimedBy: "dead"})
	if err := d.Deliver(ctx, email("k-stale", "bob@example.test")); err != nil {
		t.Fatal(err)
	}
	if n := len(e.mails(t)); n != 1 {
		t.Fatalf("captured %d", n)
	}
	rec, _ := d.Get(ctx, "k-stale")
	if rec.State != StateSent || rec.Attempts != 2 {
		t.Fatalf("record %+v", rec)
	}
	if !strings.Contains(e.logs.String(), "it may arrive twice") {
		t.Fatalf("takeover not logged:\n%s", e.logs.String())
	}
}

func TestRefusalsAreRecordedAndPublished(t *testing.T) {
	e := newEnv(t)
	d := e.deliverer(t, Config{RatePerHour: 2, MaxAttempts: 2})
	ctx := context.Background()
	reject := func(to string) *mailcapture.Reply {
		switch {
		case strings.HasPrefix(to, "gone"):
			return &mailcapture.Reply{Code: 550, Message: "no such mailbox"}
		case strings.HasPrefix(to, "busy"):
			return &mailcapture.Reply{Code: 451, Message: "greylisted"}
		}
		return nil
	}
	e.reject.Store(&reject)

	// An address that does not parse never reaches SMTP.
	if err := d.Deliver(ctx, email("k-invalid", "not an address")); err != nil {
		t.Fatal(err)
	}
	if c := e.capture.Connections(); c != 0 {
		t.Fatalf("an invalid address reached SMTP (%d connections)", c)
	}
	// 5xx: failed for good at once.
	if err := d.Deliver(ctx, email("k-gone", "gone@example.test")); err != nil {
		t.Fatal(err)
	}
	// 4xx: retry later, then give up after MaxAttempts.
	err := d.Deliver(ctx, email("k-busy", "busy@example.test"))
	var me *mailer.Error
	if !errors.As(err, &me) || me.Code != 451 || me.Permanent || bus.IsPermanent(err) {
		t.Fatalf("4xx: %v", err)
	}
	if err := d.Deliver(ctx, email("k-busy", "busy@example.test")); err != nil {
		t.Fatalf("last attempt: %v", err)
	}
	// Rate limit: the third email to one address in an hour is refused.
	for i, k := range []string{"k-r1", "k-r2", "k-r3"} {
		if err := d.Deliver(ctx, email(k, "ann@example.test")); err != nil {
			t.Fatalf("email %d: %v", i, err)
		}
	}
	if n := len(e.mails(t)); n != 2 {
		t.Fatalf("captured %d, want 2 (to ann)", n)
	}
	// Done records stay done.
	for _, k := range []string{"k-invalid", "k-gone", "k-busy", "k-r3"} {
		if err := d.Deliver(ctx, email(k, "x@example.test")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.mails(t)); n != 2 {
		t.Fatalf("captured %d after redelivery", n)
	}

	want := map[string]struct {
		code      int32
		permanent bool
		attempt   int32
		reason    string
	}{
		"k-invalid": {0, true, 1, "invalid recipient address"},
		"k-gone":    {550, true, 1, "no such mailbox"},
		"k-busy/1":  {451, false, 1, "greylisted"},
		"k-busy/2":  {451, true, 2, "gave up after 2 attempts"},
		"k-r3":      {0, true, 1, "rate limit"},
	}
	e.notify.WaitFor(t, len(want)+2, wait)
	sent, failed := e.events(t)
	if len(sent) != 2 || len(failed) != len(want) {
		t.Fatalf("sent %d failed %d: %v", len(sent), len(failed), failed)
	}
	for _, f := range failed {
		k := f.GetEventKey()
		if k == "k-busy" {
			k += "/" + string(rune('0'+f.GetAttempt()))
		}
		w, ok := want[k]
		if !ok || f.GetSmtpCode() != w.code || f.GetPermanent() != w.permanent || f.GetAttempt() != w.attempt ||
			!strings.Contains(f.GetSmtpMessage(), w.reason) || f.GetTemplate() != "connector_setup" || f.GetFailedAt() == nil {
			t.Errorf("failed event %v, want %+v", f, w)
		}
	}
}

// failingKV fails the first Update it sees after arm, as a NATS outage
// between the SMTP send and the "sent" mark would.
type failingKV struct {
	jetstream.KeyValue
	armed atomic.Bool
}

func (f *failingKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if f.armed.CompareAndSwap(true, false) {
		return 0, errors.New("nats: timeout")
	}
	return f.KeyValue.Update(ctx, key, value, rev)
}

func TestOutcomeThatCouldNotBeStoredIsNotResent(t *testing.T) {
	e := newEnv(t)
	d := e.deliverer(t, Config{})
	fk := &failingKV{KeyValue: d.kv}
	d.kv = fk
	ctx := context.Background()
	fk.armed.Store(true)
	if err := d.Deliver(ctx, email("k1", "bob@example.test")); err == nil {
		t.Fatal("the lost mark was not reported")
	}
	if n := len(e.mails(t)); n != 1 {
		t.Fatalf("captured %d", n)
	}
	// The redelivery stores the outcome this process remembers instead of
	// sending again.
	if err := d.Deliver(ctx, email("k1", "bob@example.test")); err != nil {
		t.Fatal(err)
	}
	if n := len(e.mails(t)); n != 1 {
		t.Fatalf("captured %d after the redelivery", n)
	}
	rec, _ := d.Get(ctx, "k1")
	if rec.State != StateSent || !rec.Published {
		t.Fatalf("record %+v", rec)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(2, time.Hour, func() time.Time { return now })
	s1, ok1 := l.Reserve("a")
	_, ok2 := l.Reserve("a")
	_, ok3 := l.Reserve("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("reserve: %v %v %v", ok1, ok2, ok3)
	}
	if _, ok := l.Reserve("b"); !ok {
		t.Fatal("another recipient is limited")
	}
	l.Release("a", s1)
	if _, ok := l.Reserve("a"); !ok {
		t.Fatal("a released slot was not given back")
	}
	now = now.Add(time.Hour + time.Second)
	if _, ok := l.Reserve("a"); !ok {
		t.Fatal("the window did not slide")
	}
}
