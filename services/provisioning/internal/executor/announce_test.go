package executor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// future is a PubAckFuture the test settles.
type future struct {
	ok  chan *jetstream.PubAck
	err chan error
	msg *nats.Msg
}

func newFuture(subject string) *future {
	return &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1), msg: nats.NewMsg(subject)}
}

func (f *future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *future) Err() <-chan error            { return f.err }
func (f *future) Msg() *nats.Msg               { return f.msg }

// awaitAcks returns once every publish is acknowledged, and otherwise
// fails the delivery with the publish that failed, or with the one whose
// acknowledgement did not come in time.
func TestAwaitAcks(t *testing.T) {
	ctx := context.Background()
	result, sync := newFuture("provisioning.c1.result.succeeded"), newFuture("sync.c1.request")
	result.ok <- &jetstream.PubAck{}
	sync.ok <- &jetstream.PubAck{}
	if err := awaitAcks(ctx, []jetstream.PubAckFuture{result, sync}, time.Minute); err != nil {
		t.Fatalf("both acknowledged: %v", err)
	}

	result, sync = newFuture("provisioning.c1.result.succeeded"), newFuture("sync.c1.request")
	result.ok <- &jetstream.PubAck{}
	refused := errors.New("maximum messages exceeded")
	sync.err <- refused
	err := awaitAcks(ctx, []jetstream.PubAckFuture{result, sync}, time.Minute)
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "sync.c1.request") {
		t.Errorf("the sync request refused: %v", err)
	}

	result, sync = newFuture("provisioning.c1.result.succeeded"), newFuture("sync.c1.request")
	sync.ok <- &jetstream.PubAck{} // the result's never comes
	err = awaitAcks(ctx, []jetstream.PubAckFuture{result, sync}, 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "provisioning.c1.result.succeeded") || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Errorf("an acknowledgement lost: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := awaitAcks(cctx, []jetstream.PubAckFuture{newFuture("sync.c1.request")}, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
