package rules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/services/notifier/internal/delivery"
	"github.com/accessbus/accessbus/services/notifier/internal/templates"
)

// deliverFunc is the edge of the rules: what happens at SMTP is not theirs.
type deliverFunc func(ctx context.Context, e delivery.Email) error

func (f deliverFunc) Deliver(ctx context.Context, e delivery.Email) error { return f(ctx, e) }

// TestSendRechecksClaimedEmailsSoon: when every email of an event is being
// sent by another delivery, the event comes back after ClaimRecheck, not
// after the growing delay meant for SMTP failures; any other failure keeps
// that delay, and success is nil.
func TestSendRechecksClaimedEmailsSoon(t *testing.T) {
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	claimed := fmt.Errorf("email x: %w", delivery.ErrClaimed)
	smtp4xx := errors.New("smtp 451: try again later")
	for _, tc := range []struct {
		name      string
		results   map[string]error
		wantErr   bool
		wantDelay bool
	}{
		{"all sent", map[string]error{"ann@example.com": nil, "bob@example.com": nil}, false, false},
		{"all claimed", map[string]error{"ann@example.com": claimed, "bob@example.com": claimed}, true, true},
		{"one claimed, one sent", map[string]error{"ann@example.com": claimed, "bob@example.com": nil}, true, true},
		{"one claimed, one SMTP failure", map[string]error{"ann@example.com": claimed, "bob@example.com": smtp4xx}, true, false},
		{"SMTP failure", map[string]error{"ann@example.com": smtp4xx}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Rules{tmpl: tmpl, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				deliver: deliverFunc(func(_ context.Context, e delivery.Email) error { return tc.results[e.To] })}
			var rs recipients
			for addr := range tc.results {
				rs.add(addr, reasonOwner)
			}
			err := r.send(context.Background(), "catalog/1", templates.ConnectorSetup, "c1", &rs, func(reasons []string) any {
				return templates.SetupData{Common: templates.Common{ConnectorID: "c1", Reasons: reasons}, SetupURL: "https://accessbus.example/c1/setup"}
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			d, ok := bus.RetryDelay(err)
			if ok != tc.wantDelay || (ok && d != ClaimRecheck) {
				t.Fatalf("retry delay %v (set %v), want set %v to %v", d, ok, tc.wantDelay, ClaimRecheck)
			}
		})
	}
}
