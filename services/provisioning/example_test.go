package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Example_publishRequest publishes a provisioning request on the bus, as a
// downstream system does, and waits for its result. docs/provisioning.md
// shows this code; it is compiled here so that it cannot rot.
func Example_publishRequest() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := provision(ctx, nats.DefaultURL, "okta")
	if err != nil {
		fmt.Println("provisioning request:", err)
		return
	}
	switch {
	case res.GetOutcome() == eventsv1.ProvisioningResult_OUTCOME_FAILED:
		fmt.Printf("failed (%s): %s\n", res.GetFailureReason(), res.GetMessage())
		for _, fe := range res.GetFieldErrors() {
			fmt.Printf("  %s: %s\n", fe.GetField(), fe.GetReason())
		}
	case res.GetNoOp():
		fmt.Println("already so, nothing written")
	default:
		fmt.Println("granted until", res.GetExpiresAt().AsTime())
	}
}

// provision asks connector's Okta org to add a user to a group for 8 hours
// and returns the request's result.
func provision(ctx context.Context, natsURL, connector string) (*eventsv1.ProvisioningResult, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	req := &eventsv1.ProvisioningRequest{
		// The idempotency key: the same change always gets the same id, so
		// that a retry (yours, or a redelivery) is carried out once.
		RequestId:   "CHG-1234/add-00u1ann-to-00g1eng",
		ConnectorId: connector,
		Action:      eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT,
		Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
			GroupMembership: &eventsv1.GroupMembershipTarget{UserId: "00u1ann", GroupId: "00g1eng"}}},
		RequestedBy: "change-manager",
		Reason:      "CHG-1234, approved by the data owner",
		Expiry:      &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(8 * time.Hour)},
		SubmittedAt: timestamppb.Now(),
	}

	// Follow the connector's results before publishing, so none is missed.
	// Start a little over the stream's 2-minute dedupe window back: if this
	// request_id completed moments ago, the service's repeat of its result
	// is dropped as a duplicate, and the first one is in that window.
	start := time.Now().Add(-3 * time.Minute)
	results, err := js.OrderedConsumer(ctx, subjects.StreamProvisioning, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"provisioning." + connector + ".result.>"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if err != nil {
		return nil, fmt.Errorf("follow results: %w", err)
	}

	subject, err := subjects.ProvisioningRequest(connector) // provisioning.<connector>.request
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	// Deterministic, from the request_id: a republish within two minutes
	// is dropped by the stream (the service dedupes by request_id anyway).
	msg.Header.Set(jetstream.MsgIDHeader, subjects.MsgID(subjects.DomainProvisioning, connector, subjects.EntityRequest, req.GetRequestId()))
	msg.Header.Set("Accessbus-Payload-Type", string(proto.MessageName(req))) // accessbus.events.v1.ProvisioningRequest
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return nil, fmt.Errorf("publish request: %w", err)
	}

	for {
		m, err := results.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("no result for %s yet: ask again later (accessbus provision status)", req.GetRequestId())
			}
			return nil, err
		}
		res := &eventsv1.ProvisioningResult{}
		if err := proto.Unmarshal(m.Data(), res); err != nil {
			continue
		}
		if res.GetRequestId() == req.GetRequestId() {
			return res, nil
		}
	}
}

// TestDocExampleIsThisOne: docs/provisioning.md shows provision exactly as
// it is compiled here.
func TestDocExampleIsThisOne(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/provisioning.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "// provision asks", "\n}\n"
	code := string(src)
	i := strings.Index(code, start)
	if i < 0 {
		t.Fatal("example_test.go lost provision")
	}
	j := strings.Index(code[i:], end)
	fn := code[i : i+j+len(end)]
	if !strings.Contains(string(doc), fn) {
		t.Errorf("docs/provisioning.md does not show provision as example_test.go has it; copy it over:\n%s", fn)
	}
}
