package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

func testMail(to, subject string) []byte {
	return []byte("From: accessbus <ab@example.test>\r\n" +
		"To: " + to + "\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + subject + "@example.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=B\r\n" +
		"\r\n" +
		"--B\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"Set up connector: https://ab.example.test/connectors/c1/setup\r\n" +
		"--B\r\n" +
		"Content-Type: text/html; charset=UTF-8\r\n" +
		"\r\n" +
		"<a href=\"x\">Set up connector</a>\r\n" +
		"--B--\r\n")
}

func runMailCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newMailCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestMailListAndShow(t *testing.T) {
	ns := testkit.StartNATS(t)
	js := ns.JetStream(t)
	ctx := context.Background()
	dir := t.TempDir()

	// Before any capture server ran: a clear answer.
	if _, err := runMailCmd(t, "list", "--nats-url", ns.URL, "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "MAIL_CAPTURE") {
		t.Fatalf("list without a bucket: %v", err)
	}

	srv, err := mailcapture.Start(ctx, "127.0.0.1:0", js, mailcapture.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(ctx) })
	out, err := runMailCmd(t, "list", "--nats-url", ns.URL)
	if err != nil || !strings.Contains(out, "(no emails)") {
		t.Fatalf("empty list: %q %v", out, err)
	}
	for _, m := range []struct{ to, subject string }{{"bob@example.test", "setup-c1"}, {"carol@example.test", "setup-c2"}} {
		if err := smtp.SendMail(srv.Addr(), nil, "ab@example.test", []string{m.to}, testMail(m.to, m.subject)); err != nil {
			t.Fatal(err)
		}
	}

	// The NATS URL from the data dir of a running accessbus dev.
	t.Setenv("ACCESSBUS_NATS_URL", "")
	if err := os.WriteFile(filepath.Join(dir, natsURLFile), []byte(ns.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runMailCmd(t, "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.HasPrefix(lines[1], "1 ") || !strings.Contains(lines[1], "bob@example.test") || !strings.Contains(lines[1], "setup-c1") ||
		!strings.HasPrefix(lines[2], "2 ") || !strings.Contains(lines[2], "carol@example.test") {
		t.Fatalf("list:\n%s", out)
	}
	out, err = runMailCmd(t, "list", "--nats-url", ns.URL, "--to", "Carol@Example.test", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var l mailLine
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.ID != 2 || l.Subject != "setup-c2" || l.MessageID != "<setup-c2@example.test>" || l.From != "ab@example.test" {
		t.Fatalf("list --json: %q %v", out, err)
	}

	out, err = runMailCmd(t, "show", "1", "--nats-url", ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ID:         1", "To:         bob@example.test", "Subject:    setup-c1", "Message-ID: <setup-c1@example.test>",
		"Set up connector: https://ab.example.test/connectors/c1/setup"} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "<a href") {
		t.Errorf("show printed the HTML body:\n%s", out)
	}
	out, err = runMailCmd(t, "show", "1", "--html", "--nats-url", ns.URL)
	if err != nil || !strings.Contains(out, `<a href="x">Set up connector</a>`) {
		t.Fatalf("show --html: %q %v", out, err)
	}
	out, err = runMailCmd(t, "show", "2", "--raw", "--nats-url", ns.URL)
	if err != nil || !strings.Contains(out, "Content-Transfer-Encoding: quoted-printable\n") || strings.Contains(out, "\r") {
		t.Fatalf("show --raw: %q %v", out, err)
	}
	if _, err := runMailCmd(t, "show", "9", "--nats-url", ns.URL); err == nil || !strings.Contains(err.Error(), "no captured email 9") {
		t.Fatalf("show 9: %v", err)
	}
	if _, err := runMailCmd(t, "show", "abc", "--nats-url", ns.URL); err == nil || !strings.Contains(err.Error(), "mail list") {
		t.Fatalf("show abc: %v", err)
	}
}
