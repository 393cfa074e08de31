package bus_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
)

// benchEvent is a typical access event.
func benchEvent(i int) *eventsv1.GrantAdded {
	return &eventsv1.GrantAdded{
		Context: &eventsv1.ChangeContext{
			ConnectorId: "c1", Cause: eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC,
			RunId: "run-1", Revision: uint64(i), ObservedAt: timestamppb.Now(),
		},
		Grant: &eventsv1.Grant{
			Key:         "group_membership/00g1a2b3c4d5e6f7g8h9/00u" + strconv.Itoa(i),
			Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: "00u" + strconv.Itoa(i)},
			Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{GroupId: "00g1a2b3c4d5e6f7g8h9"}},
		},
	}
}

// benchBus starts a server in its own process and returns a plain JetStream
// context, a Bus instrumented as in production (telemetry without an
// exporter), and a context inside a span, as the work of a service that
// publishes (a sync run, a handler) always is.
func benchBus(b *testing.B) (context.Context, jetstream.JetStream, *bus.Bus) {
	b.Helper()
	srv := testkit.StartNATSProcess(b)
	js := srv.JetStream(b)
	ctx := context.Background()
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		b.Fatal(err)
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	bb, err := bus.New(js, bus.Options{TracerProvider: tel.TracerProvider(), MeterProvider: tel.MeterProvider(), Propagator: tel.Propagator()})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, run := tel.TracerProvider().Tracer("bench").Start(ctx, "sync run")
	b.Cleanup(func() { run.End() })
	return runCtx, js, bb
}

// plainPublish is what a service would write with nats.go alone: marshal,
// set the dedupe header, publish and wait for the ack.
func plainPublish(ctx context.Context, js jetstream.JetStream, subject, id string, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	_, err = js.PublishMsg(ctx, msg)
	return err
}

// round is how many operations each side runs before the other takes a turn.
// Alternating in small rounds exposes both to the same machine noise, so the
// ratio holds even on a busy two-core VM.
const round = 1

// BenchmarkPublish compares libs/bus Publish (span, trace headers, payload
// type, metrics) with plain nats.go JetStream publishing of the same payload,
// both waiting for the stream's ack, alternating in rounds. It reports each
// side's throughput and the bus's overhead in percent.
func BenchmarkPublish(b *testing.B) {
	ctx, js, bb := benchBus(b)
	events := make([]*eventsv1.GrantAdded, 1024)
	for i := range events {
		events[i] = benchEvent(i)
	}
	var plainT, busT time.Duration
	var plainN, busN int
	i := 0
	for b.Loop() {
		start := time.Now()
		if (i/round)%2 == 0 {
			if err := plainPublish(ctx, js, "access.c1.grant.added", "plain-"+strconv.Itoa(i), events[i%len(events)]); err != nil {
				b.Fatal(err)
			}
			plainT += time.Since(start)
			plainN++
		} else {
			if _, err := bb.Publish(ctx, "access.c1.grant.added", "bus-"+strconv.Itoa(i), events[i%len(events)]); err != nil {
				b.Fatal(err)
			}
			busT += time.Since(start)
			busN++
		}
		i++
	}
	report(b, "msgs/s", plainN, plainT, busN, busT)
}

// report prints both sides' rates and the bus's overhead in time per op.
func report(b *testing.B, unit string, plainN int, plainT time.Duration, busN int, busT time.Duration) {
	if plainN == 0 || busN == 0 {
		return
	}
	plainPer := plainT.Seconds() / float64(plainN)
	busPer := busT.Seconds() / float64(busN)
	if unit == "msgs/s" {
		b.ReportMetric(1/plainPer, "plain-msgs/s")
		b.ReportMetric(1/busPer, "bus-msgs/s")
	} else {
		b.ReportMetric(plainPer*1e6, "plain-µs/latency")
		b.ReportMetric(busPer*1e6, "bus-µs/latency")
	}
	b.ReportMetric((busPer/plainPer-1)*100, "overhead-%")
}

// BenchmarkPublishToConsume measures one message at a time from publish to
// the consumer's handler, for libs/bus (publish, typed durable consumer with
// decode, span and ack) and plain nats.go (publish, pull consumer, unmarshal,
// ack), alternating in rounds.
func BenchmarkPublishToConsume(b *testing.B) {
	ctx, js, bb := benchBus(b)
	ev := benchEvent(1)

	plainGot := make(chan struct{}, 1)
	cons, err := js.CreateOrUpdateConsumer(ctx, "ACCESS", jetstream.ConsumerConfig{
		Durable: "plain", FilterSubject: "access.c2.>", AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var v eventsv1.GrantAdded
		if err := proto.Unmarshal(m.Data(), &v); err != nil {
			b.Error(err)
		}
		plainGot <- struct{}{}
		_ = m.Ack()
	}, jetstream.PullMaxMessages(bus.DefaultPrefetch))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	busGot := make(chan struct{}, 1)
	sub, err := bus.Consume(ctx, bb, bus.ConsumerSpec{
		Stream: "ACCESS", Durable: "bus", Filter: []string{"access.c3.>"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	}, func(ctx context.Context, m *bus.Message[*eventsv1.GrantAdded]) error {
		busGot <- struct{}{}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Stop(ctx)

	var plainT, busT time.Duration
	var plainN, busN int
	i := 0
	for b.Loop() {
		start := time.Now()
		if (i/round)%2 == 0 {
			if err := plainPublish(ctx, js, "access.c2.grant.added", "p2c-plain-"+strconv.Itoa(i), ev); err != nil {
				b.Fatal(err)
			}
			<-plainGot
			plainT += time.Since(start)
			plainN++
		} else {
			if _, err := bb.Publish(ctx, "access.c3.grant.added", "p2c-bus-"+strconv.Itoa(i), ev); err != nil {
				b.Fatal(err)
			}
			<-busGot
			busT += time.Since(start)
			busN++
		}
		i++
	}
	report(b, "latency", plainN, plainT, busN, busT)
}
