package mailer_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/notifier/internal/mailer"
	"github.com/accessbus/accessbus/services/notifier/internal/testcert"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

func capture(t *testing.T, js jetstream.JetStream, ln net.Listener, opts mailcapture.Options) *mailcapture.Server {
	t.Helper()
	opts.Storage = jetstream.MemoryStorage
	srv, err := mailcapture.Serve(context.Background(), ln, js, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return srv
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

var msg = mailer.Message{To: "bob@example.test", Subject: "Hi", Text: "text", HTML: "<p>html</p>", MessageID: "id1@example.test", Date: time.Now()}

func TestTLSModesAndAuth(t *testing.T) {
	js := testkit.StartNATS(t).JetStream(t)
	serverTLS, clientTLS := testcert.New(t)
	const password = "pw-7f3a9c1e"
	starttls := capture(t, js, listen(t), mailcapture.Options{TLSConfig: serverTLS, Username: "ab", Password: password})
	implicit := capture(t, js, tls.NewListener(listen(t), serverTLS), mailcapture.Options{Username: "ab", Password: password})
	plain := capture(t, js, listen(t), mailcapture.Options{})
	ctx := context.Background()

	send := func(cfg mailer.Config) error {
		t.Helper()
		cfg.From, cfg.Timeout, cfg.TLSConfig = "ab@example.test", 5*time.Second, clientTLS
		m, err := mailer.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m.Send(ctx, msg)
	}
	secret := telemetry.NewSecret(password)
	for _, c := range []mailer.Config{
		{Addr: starttls.Addr(), TLS: mailer.TLSStartTLSRequired, Username: "ab", Password: secret},
		{Addr: starttls.Addr(), TLS: mailer.TLSStartTLS, Username: "ab", Password: secret},
		{Addr: implicit.Addr(), TLS: mailer.TLSImplicit, Username: "ab", Password: secret},
		{Addr: plain.Addr(), TLS: mailer.TLSNone},
		{Addr: plain.Addr(), TLS: mailer.TLSStartTLS}, // no STARTTLS offered: sent in the clear
	} {
		if err := send(c); err != nil {
			t.Fatalf("%s %s: %v", c.Addr, c.TLS, err)
		}
	}
	n := 0
	for _, s := range []*mailcapture.Server{starttls, implicit, plain} {
		msgs, _ := s.Store().List(ctx)
		n += len(msgs)
	}
	// The three servers share one bucket.
	if n != 5*3 {
		t.Fatalf("captured %d (counted per server over one bucket)", n)
	}

	// STARTTLS required but not offered: not sent, retried later.
	err := send(mailer.Config{Addr: plain.Addr(), TLS: mailer.TLSStartTLSRequired})
	var me *mailer.Error
	if !errors.As(err, &me) || me.Permanent || !strings.Contains(me.Message, "STARTTLS") {
		t.Fatalf("STARTTLS required: %v", err)
	}
	// A wrong password: the server's 535, retried (the settings are wrong,
	// not the email), and the password is in no error text.
	wrong := "wrong-" + password
	err = send(mailer.Config{Addr: starttls.Addr(), TLS: mailer.TLSStartTLSRequired, Username: "ab", Password: telemetry.NewSecret(wrong)})
	if !errors.As(err, &me) || me.Code != 535 || me.Permanent || strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
		t.Fatalf("wrong password: %v", err)
	}
	// Nothing listening: no code, retried.
	ln := listen(t)
	addr := ln.Addr().String()
	_ = ln.Close()
	err = send(mailer.Config{Addr: addr, TLS: mailer.TLSNone})
	if !errors.As(err, &me) || me.Code != 0 || me.Permanent {
		t.Fatalf("connection refused: %v", err)
	}
}

func TestReplyCodes(t *testing.T) {
	js := testkit.StartNATS(t).JetStream(t)
	srv := capture(t, js, listen(t), mailcapture.Options{Reject: func(_, to string) *mailcapture.Reply {
		if strings.HasPrefix(to, "gone") {
			return &mailcapture.Reply{Code: 550, Message: "no such user"}
		}
		return &mailcapture.Reply{Code: 452, Message: "mailbox full"}
	}})
	m, err := mailer.New(mailer.Config{Addr: srv.Addr(), TLS: mailer.TLSNone, From: "ab@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	gone := msg
	gone.To = "gone@example.test"
	var me *mailer.Error
	if err := m.Send(context.Background(), gone); !errors.As(err, &me) || me.Code != 550 || !me.Permanent || !strings.Contains(me.Message, "no such user") {
		t.Fatalf("550: %v", err)
	}
	if err := m.Send(context.Background(), msg); !errors.As(err, &me) || me.Code != 452 || me.Permanent {
		t.Fatalf("452: %v", err)
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	for _, c := range []mailer.Config{
		{Addr: "smtp.example.test", TLS: mailer.TLSNone, From: "a@example.test"},
		{Addr: "smtp.example.test:0", TLS: mailer.TLSNone, From: "a@example.test"},
		{Addr: "smtp.example.test:25", TLS: "ssl", From: "a@example.test"},
		{Addr: "smtp.example.test:25", TLS: mailer.TLSNone, From: "a@example.test", Username: "u"},
		{Addr: "smtp.example.test:25", TLS: mailer.TLSNone, From: "not an address"},
	} {
		if _, err := mailer.New(c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
