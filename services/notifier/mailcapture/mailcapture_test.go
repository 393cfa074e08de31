package mailcapture_test

import (
	"context"
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

const multipartMsg = "From: a@example.test\r\n" +
	"To: b@example.test\r\n" +
	"Subject: =?UTF-8?q?Caf=C3=A9_news?=\r\n" +
	"Message-ID: <m1@example.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=XYZ\r\n" +
	"\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Caf=C3=A9 is open: https://example.test/a-very-long-link-that-goes-on-and-on-and=\r\n" +
	"-on\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+Q2Fmw6kgaXMgb3BlbjwvcD4=\r\n" +
	"--XYZ--\r\n"

func TestCapturesStoresAndParses(t *testing.T) {
	ns := testkit.StartNATS(t)
	js := ns.JetStream(t)
	ctx := context.Background()
	srv, err := mailcapture.Start(ctx, "127.0.0.1:0", js, mailcapture.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(ctx) })
	for range 2 {
		if err := smtp.SendMail(srv.Addr(), nil, "a@example.test", []string{"b@example.test", "c@example.test"}, []byte(multipartMsg)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := srv.Store().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].ID != 1 || msgs[1].ID != 2 {
		t.Fatalf("captured %+v", msgs)
	}
	m := msgs[0]
	if m.From != "a@example.test" || strings.Join(m.To, ",") != "b@example.test,c@example.test" ||
		m.Subject != "Café news" || m.MessageID != "<m1@example.test>" || m.ReceivedAt.IsZero() {
		t.Fatalf("message %+v", m)
	}
	p, err := mailcapture.Parse(m.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "Café news" || p.Text != "Café is open: https://example.test/a-very-long-link-that-goes-on-and-on-and-on" ||
		p.HTML != "<p>Café is open</p>" {
		t.Fatalf("parsed %+v", p)
	}
	if _, err := srv.Store().Get(ctx, 99); !errors.Is(err, mailcapture.ErrNotFound) {
		t.Fatalf("Get(99): %v", err)
	}
	if srv.Connections() != 2 {
		t.Fatalf("connections %d", srv.Connections())
	}

	// A new server on the same bucket numbers on from the highest id.
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	srv2, err := mailcapture.Start(ctx, "127.0.0.1:0", js, mailcapture.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv2.Close(ctx) })
	if err := smtp.SendMail(srv2.Addr(), nil, "a@example.test", []string{"b@example.test"}, []byte(multipartMsg)); err != nil {
		t.Fatal(err)
	}
	store, err := mailcapture.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := store.Get(ctx, 3); err != nil || strings.Join(m.To, ",") != "b@example.test" {
		t.Fatalf("third message %+v, %v", m, err)
	}
}

func TestOpenStoreWithoutBucket(t *testing.T) {
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := mailcapture.OpenStore(context.Background(), js); !errors.Is(err, mailcapture.ErrNoCapture) {
		t.Fatalf("OpenStore: %v", err)
	}
}

func TestRejectAndAuth(t *testing.T) {
	js := testkit.StartNATS(t).JetStream(t)
	ctx := context.Background()
	srv, err := mailcapture.Start(ctx, "127.0.0.1:0", js, mailcapture.Options{
		Storage:  jetstream.MemoryStorage,
		Username: "u", Password: "p", AllowInsecureAuth: true,
		Reject: func(_, to string) *mailcapture.Reply {
			if strings.HasPrefix(to, "busy") {
				return &mailcapture.Reply{Code: 451, Message: "try later"}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(ctx) })
	// Without AUTH, MAIL FROM is refused.
	err = smtp.SendMail(srv.Addr(), nil, "a@example.test", []string{"b@example.test"}, []byte(multipartMsg))
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 502 {
		t.Fatalf("unauthenticated send: %v", err)
	}
	// net/smtp refuses PLAIN auth to a non-local server without TLS, but
	// 127.0.0.1 counts as local.
	auth := smtp.PlainAuth("", "u", "wrong", "127.0.0.1")
	err = smtp.SendMail(srv.Addr(), auth, "a@example.test", []string{"b@example.test"}, []byte(multipartMsg))
	if !errors.As(err, &te) || te.Code != 535 {
		t.Fatalf("wrong password: %v", err)
	}
	auth = smtp.PlainAuth("", "u", "p", "127.0.0.1")
	err = smtp.SendMail(srv.Addr(), auth, "a@example.test", []string{"busy@example.test"}, []byte(multipartMsg))
	if !errors.As(err, &te) || te.Code != 451 {
		t.Fatalf("rejected recipient: %v", err)
	}
	if err := smtp.SendMail(srv.Addr(), auth, "a@example.test", []string{"b@example.test"}, []byte(multipartMsg)); err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.Store().List(ctx)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("captured %d, %v", len(msgs), err)
	}
}
