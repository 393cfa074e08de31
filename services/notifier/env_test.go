package notifier_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/notifier"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

const wait = 15 * time.Second

// env is an embedded NATS with the bus's streams, the connector store, the
// capture SMTP server and a notifier configured against them.
type env struct {
	nats    *testkit.NATS
	js      jetstream.JetStream
	bus     *bus.Bus
	conns   *connectors.Store
	capture *mailcapture.Server
	notify  *testkit.Recorder
	logs    *testkit.Buffer
	cfg     notifier.Config
	tlsCfg  *tls.Config
	// reject, when set, answers RCPT TO in place of accepting.
	reject atomic.Pointer[func(to string) *mailcapture.Reply]
	rcpts  sync.Map // address -> *atomic.Int64, RCPT TO seen
}

type envOption func(*env, *mailcapture.Options)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	ns := testkit.StartNATS(t)
	js := ns.JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{})...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conns, err := connectors.Open(ctx, js, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{nats: ns, js: js, bus: b, conns: conns, logs: &testkit.Buffer{}}
	copts := mailcapture.Options{Reject: func(_, to string) *mailcapture.Reply {
		c, _ := e.rcpts.LoadOrStore(to, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		if f := e.reject.Load(); f != nil {
			return (*f)(to)
		}
		return nil
	}}
	e.cfg = notifier.Config{
		Config:              service.Config{ShutdownTimeout: 5 * time.Second},
		SMTPTLS:             "none",
		SMTPTimeout:         5 * time.Second,
		MailFrom:            "accessbus <accessbus@example.test>",
		PublicBaseURL:       "https://accessbus.example.test/",
		PerRecipientPerHour: 20,
		MaxAttempts:         4,
		RetryBase:           50 * time.Millisecond,
		RetryMax:            200 * time.Millisecond,
		MaxEventAge:         time.Hour,
		Workers:             2,
	}
	for _, o := range opts {
		o(e, &copts)
	}
	e.capture, err = mailcapture.Start(ctx, "127.0.0.1:0", js, copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.capture.Close(ctx) })
	e.cfg.SMTPAddr = e.capture.Addr()
	e.notify = testkit.Record(t, js, subjects.StreamNotify, "notify.>", true)
	return e
}

func (e *env) setReject(f func(to string) *mailcapture.Reply) { e.reject.Store(&f) }

func (e *env) rcptCount(to string) int64 {
	c, ok := e.rcpts.Load(to)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// start runs the notifier until the returned stop is called (or the test
// ends) and waits until it reports ready.
func (e *env) start(t *testing.T) (stop func()) {
	t.Helper()
	health := service.NewHealth()
	health.Register(notifier.Name)
	log := telemetry.NewLogger(e.logs, slog.LevelDebug)
	deps := notifier.Deps{
		Deps:          service.Deps{Logger: log, Bus: e.bus, Health: health, Mux: http.NewServeMux()},
		Config:        e.cfg,
		SMTPTLSConfig: e.tlsCfg,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- notifier.Run(ctx, deps) }()
	deadline := time.Now().Add(wait)
	for len(health.Problems(context.Background())) != 0 {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("notifier stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("notifier not ready: %v", health.Problems(context.Background()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("notifier Run: %v", err)
				}
			case <-time.After(wait):
				t.Error("notifier did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) publish(t *testing.T, subject, msgID string, payload proto.Message) {
	t.Helper()
	if _, err := e.bus.Publish(context.Background(), subject, msgID, payload); err != nil {
		t.Fatal(err)
	}
}

// drained waits until a consumer has nothing pending or unacknowledged.
func (e *env) drained(t *testing.T, stream, durable string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	for {
		c, err := e.js.Consumer(ctx, stream, durable)
		if err == nil {
			info, err := c.Info(ctx)
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s on %s did not drain", durable, stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mails waits for at least n captured emails and returns them all.
func (e *env) mails(t *testing.T, n int) []mailcapture.Message {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		msgs, err := e.capture.Store().List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d emails, got %d", n, len(msgs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailsTo returns the captured emails to addr, parsed.
func (e *env) mailsTo(t *testing.T, addr string) []mailcapture.Parsed {
	t.Helper()
	msgs, err := e.capture.Store().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []mailcapture.Parsed
	for _, m := range msgs {
		for _, to := range m.To {
			if to == addr {
				p, err := mailcapture.Parse(m.Raw)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, p)
			}
		}
	}
	return out
}

// recipients lists the envelope recipients of every captured email, sorted.
func (e *env) recipients(t *testing.T) []string {
	t.Helper()
	msgs, err := e.capture.Store().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.To...)
	}
	slices.Sort(out)
	return out
}

// events decodes what the notifier published on notify.>.
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

// createConnector stores a connector record with owners (as the catalog would).
func (e *env) createConnector(t *testing.T, id string, owners ...*eventsv1.ConnectorOwner) {
	t.Helper()
	if _, err := e.conns.Create(context.Background(), &eventsv1.Connector{Id: id, OktaDomain: id + ".okta.com", Owners: owners}); err != nil {
		t.Fatal(err)
	}
}

func owner(id, email string) *eventsv1.ConnectorOwner {
	return &eventsv1.ConnectorOwner{IdentityId: id, Email: email}
}

// identity publishes an IdentityUpserted with Okta users of connector c1.
func (e *env) identity(t *testing.T, id, email string, oktaUsers ...string) {
	t.Helper()
	i := &eventsv1.Identity{Id: id, Email: email, Revision: 1}
	for _, u := range oktaUsers {
		i.OktaUsers = append(i.OktaUsers, &eventsv1.LinkedOktaUser{ConnectorId: "c1", OktaUserId: u})
	}
	e.publish(t, subjects.CatalogIdentityUpserted, subjects.MsgID("catalog", "identity", id, "upserted", "1"), &eventsv1.IdentityUpserted{Identity: i})
}

func contains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// publishNoDedupe publishes a message whose Nats-Msg-Id the stream has seen
// before, as a republish after the dedupe window would: the window is made
// short for a moment.
func (e *env) publishNoDedupe(t *testing.T, subject, msgID string, payload proto.Message) {
	t.Helper()
	ctx := context.Background()
	// The stream's dedupe window was made short (shortDedupe) before the
	// first publish; the server forgets ids on its own timer, so try until
	// it takes the message as new.
	var ack *jetstream.PubAck
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		time.Sleep(200 * time.Millisecond)
		ack, err = e.bus.Publish(ctx, subject, msgID, payload)
		if err != nil || !ack.Duplicate || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || ack.Duplicate {
		t.Fatalf("republish: %v (duplicate %v)", err, ack != nil && ack.Duplicate)
	}
}

// shortDedupe makes the dedupe window of subject's stream short, before
// anything is published on it.
func (e *env) shortDedupe(t *testing.T, subject string) {
	t.Helper()
	ctx := context.Background()
	name, err := subjects.StreamOf(subject)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 500 * time.Millisecond
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}
