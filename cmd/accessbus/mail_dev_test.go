package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"
)

// TestDevCapturesTheNotifiersMail: in accessbus dev, a setup email reaches
// the embedded capture server and `accessbus mail list|show` reads it.
func TestDevCapturesTheNotifiersMail(t *testing.T) {
	t.Setenv("ACCESSBUS_SMTP_ADDR", "")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	errCh := make(chan error, 1)
	var out testkit.Buffer
	var httpAddr string
	go func() {
		errCh <- runDev(ctx, devOptions{dataDir: dir, httpAddr: "127.0.0.1:0", logLevel: "info", shutdownTimeout: 20 * time.Second},
			&out, io.Discard, func(h, natsURL string) { httpAddr = h; ready <- natsURL })
	}()
	var natsURL string
	select {
	case natsURL = <-ready:
	case err := <-errCh:
		t.Fatalf("dev stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev not ready in 60s")
	}
	if !strings.Contains(out.String(), "accessbus mail list") {
		t.Fatalf("dev did not say where the mail goes:\n%s", out.String())
	}
	js := devJetStream(t, natsURL)
	b, _ := bus.New(js, bus.Options{})
	ev := &eventsv1.ConnectorCreated{Connector: &eventsv1.Connector{Id: "acme", Status: eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED,
		CreatedBy: "i-admin", CreatedAt: timestamppb.Now(), Revision: 1,
		Owners: []*eventsv1.ConnectorOwner{{IdentityId: "i-bob", Email: "bob@example.com"}}}}
	if _, err := b.Publish(ctx, subjects.CatalogConnectorCreated, subjects.MsgID("catalog", "connector", "acme", "created", "1"), ev); err != nil {
		t.Fatal(err)
	}
	var (
		list string
		err  error
	)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if list, err = runMailCmd(t, "list", "--data-dir", dir); err == nil && strings.Contains(list, "bob@example.com") {
			break
		}
	}
	if !strings.Contains(list, "Your help is needed: set up the Okta connector acme") {
		t.Fatalf("mail list:\n%s (%v)", list, err)
	}
	show, err := runMailCmd(t, "show", "1", "--data-dir", dir)
	if err != nil || !strings.Contains(show, "Set up connector: http://127.0.0.1:8080/connectors/acme/setup") {
		t.Fatalf("mail show: %s %v", show, err)
	}
	// Through dev's HTTP server, with the API key dev keeps in its data dir.
	server := "http://" + httpAddr
	if list, err := runMailCmd(t, "list", "--server", server, "--data-dir", dir); err != nil || !strings.Contains(list, "bob@example.com") {
		t.Fatalf("mail list --server: %s %v", list, err)
	}
	if show, err := runMailCmd(t, "show", "1", "--server", server, "--data-dir", dir); err != nil || !strings.Contains(show, "Set up connector:") {
		t.Fatalf("mail show --server: %s %v", show, err)
	}
	if _, err := runMailCmd(t, "list", "--server", server, "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "API key") {
		t.Fatalf("mail list --server without a key: %v", err)
	}
	cancel()
	if err := <-errCh; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
