package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/subjects"
)

// DefaultDuplicateWindow is the dedupe window of every stream: a publish whose
// Nats-Msg-Id was seen within it is dropped by the server.
const DefaultDuplicateWindow = 2 * time.Minute

// StreamOptions tune the stream declarations for a deployment.
type StreamOptions struct {
	// Replicas is the number of JetStream replicas per stream (1 for a single
	// server, 3 for the Kubernetes cluster). Zero means 1.
	Replicas int
	// Storage is file storage unless set to jetstream.MemoryStorage (tests, benchmarks).
	Storage jetstream.StorageType
}

// Streams returns the declarations of every stream of the bus, one per domain
// (see ARCHITECTURE.md). They are the single source of truth for stream
// settings; services and `accessbus dev` declare them at start.
func Streams(opts StreamOptions) []jetstream.StreamConfig {
	replicas := opts.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	day := 24 * time.Hour
	mk := func(name, subject, desc string, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Retention:   jetstream.LimitsPolicy,
			Storage:     opts.Storage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      maxAge,
			Duplicates:  DefaultDuplicateWindow,
			Replicas:    replicas,
		}
	}
	access := mk(subjects.StreamAccess, subjects.FilterAccess, "Public change log of resources and grants per connector", 30*day)
	// A sync publishes its changes in fast batches (Bus.PublishBatch).
	access.AllowBatchPublish = true
	return []jetstream.StreamConfig{
		access,
		mk(subjects.StreamSync, subjects.FilterSync, "Sync requests (work queue consumer) and sync run events", 7*day),
		mk(subjects.StreamProvisioning, subjects.FilterProvisioning, "Provisioning requests, results and expiry warnings", 30*day),
		mk(subjects.StreamCatalog, subjects.FilterCatalog, "Applications, connectors and platform identities", 30*day),
		mk(subjects.StreamOktaHooks, subjects.FilterOktaHooks, "Raw Okta event-hook deliveries, stored before Okta is answered", 7*day),
		mk(subjects.StreamNotify, subjects.FilterNotify, "Emails sent or failed", 30*day),
		mk(subjects.StreamDLQ, subjects.FilterDLQ, "Messages that failed permanently or past their retry budget, with the reason", 30*day),
	}
}

// Outcome says what a declaration did.
type Outcome string

// Outcomes of a declaration.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
)

// StreamResult is the outcome of declaring one stream.
type StreamResult struct {
	Name    string
	Outcome Outcome
	// Changed names the settings that an update changed.
	Changed []string
}

// DeclareStreams creates every stream that is missing and updates those whose
// changeable settings differ from the declaration; running it twice changes
// nothing. A difference in a setting that JetStream cannot change in place
// (storage, retention) is reported as ErrStreamConflict naming the setting.
func DeclareStreams(ctx context.Context, js jetstream.JetStream, cfgs ...jetstream.StreamConfig) ([]StreamResult, error) {
	results := make([]StreamResult, 0, len(cfgs))
	for _, want := range cfgs {
		res, err := declareStream(ctx, js, want)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

func declareStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (StreamResult, error) {
	res := StreamResult{Name: want.Name}
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			// Another replica may have created it in the meantime.
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return declareStream(ctx, js, want)
			}
			return res, fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		res.Outcome = Created
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Storage != want.Storage {
		return res, fmt.Errorf("stream %s: storage is %s but declared %s; it cannot change in place, migrate the stream: %w",
			want.Name, have.Storage, want.Storage, ErrStreamConflict)
	}
	if have.Retention != want.Retention {
		return res, fmt.Errorf("stream %s: retention is %s but declared %s; it cannot change in place, migrate the stream: %w",
			want.Name, have.Retention, want.Retention, ErrStreamConflict)
	}
	changed := streamDiff(have, want)
	if len(changed) == 0 {
		res.Outcome = Unchanged
		return res, nil
	}
	// Keep the server's settings we do not manage and overlay ours.
	upd := have
	upd.Description = want.Description
	upd.Subjects = want.Subjects
	upd.Discard = want.Discard
	upd.MaxAge = want.MaxAge
	upd.MaxBytes = want.MaxBytes
	upd.MaxMsgs = want.MaxMsgs
	upd.Duplicates = want.Duplicates
	upd.Replicas = want.Replicas
	upd.AllowBatchPublish = want.AllowBatchPublish
	if _, err := js.UpdateStream(ctx, upd); err != nil {
		return res, fmt.Errorf("update stream %s (%v): %w", want.Name, changed, err)
	}
	res.Outcome = Updated
	res.Changed = changed
	return res, nil
}

// unlimited treats the server's -1 and the zero value alike.
func unlimited(v int64) int64 {
	if v <= 0 {
		return -1
	}
	return v
}

func streamDiff(have, want jetstream.StreamConfig) []string {
	var d []string
	if have.Description != want.Description {
		d = append(d, "description")
	}
	if !slices.Equal(have.Subjects, want.Subjects) {
		d = append(d, "subjects")
	}
	if have.Discard != want.Discard {
		d = append(d, "discard")
	}
	if have.MaxAge != want.MaxAge {
		d = append(d, "max_age")
	}
	if unlimited(have.MaxBytes) != unlimited(want.MaxBytes) {
		d = append(d, "max_bytes")
	}
	if unlimited(have.MaxMsgs) != unlimited(want.MaxMsgs) {
		d = append(d, "max_msgs")
	}
	if want.Duplicates != 0 && have.Duplicates != want.Duplicates {
		d = append(d, "duplicate_window")
	}
	if max(have.Replicas, 1) != max(want.Replicas, 1) {
		d = append(d, "replicas")
	}
	if have.AllowBatchPublish != want.AllowBatchPublish {
		d = append(d, "allow_batched")
	}
	return d
}

// ConsumerResult is the outcome of declaring one consumer.
type ConsumerResult struct {
	Stream  string
	Name    string
	Outcome Outcome
	Changed []string
}

// DeclareConsumer creates a durable consumer or updates its changeable
// settings; running it twice changes nothing. A difference in a setting that
// cannot change in place (deliver policy, ack policy, start sequence) is
// reported as ErrConsumerConflict naming the setting.
func DeclareConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig) (jetstream.Consumer, ConsumerResult, error) {
	res := ConsumerResult{Stream: stream, Name: want.Durable}
	if want.Durable == "" {
		return nil, res, fmt.Errorf("declare consumer on %s: a durable name is required", stream)
	}
	c, err := js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = js.CreateConsumer(ctx, stream, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return DeclareConsumer(ctx, js, stream, want)
		}
		if err != nil {
			return nil, res, fmt.Errorf("create consumer %s on %s: %w", want.Durable, stream, err)
		}
		res.Outcome = Created
		return c, res, nil
	}
	if err != nil {
		return nil, res, fmt.Errorf("look up consumer %s on %s: %w", want.Durable, stream, err)
	}
	have := c.CachedInfo().Config
	if have.DeliverPolicy != want.DeliverPolicy || have.OptStartSeq != want.OptStartSeq {
		return nil, res, fmt.Errorf("consumer %s on %s: deliver policy is %s (start %d) but declared %s (start %d); delete the consumer to change it: %w",
			want.Durable, stream, have.DeliverPolicy, have.OptStartSeq, want.DeliverPolicy, want.OptStartSeq, ErrConsumerConflict)
	}
	if have.AckPolicy != want.AckPolicy {
		return nil, res, fmt.Errorf("consumer %s on %s: ack policy is %s but declared %s; delete the consumer to change it: %w",
			want.Durable, stream, have.AckPolicy, want.AckPolicy, ErrConsumerConflict)
	}
	changed := consumerDiff(have, want)
	if len(changed) == 0 {
		res.Outcome = Unchanged
		return c, res, nil
	}
	c, err = js.UpdateConsumer(ctx, stream, want)
	if err != nil {
		return nil, res, fmt.Errorf("update consumer %s on %s (%v): %w", want.Durable, stream, changed, err)
	}
	res.Outcome = Updated
	res.Changed = changed
	return c, res, nil
}

func filters(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return c.FilterSubjects
}

func consumerDiff(have, want jetstream.ConsumerConfig) []string {
	var d []string
	if have.Description != want.Description {
		d = append(d, "description")
	}
	if !slices.Equal(filters(have), filters(want)) {
		d = append(d, "filter_subjects")
	}
	if want.AckWait != 0 && have.AckWait != want.AckWait {
		d = append(d, "ack_wait")
	}
	if want.MaxDeliver != 0 && have.MaxDeliver != want.MaxDeliver {
		d = append(d, "max_deliver")
	}
	if want.MaxAckPending != 0 && have.MaxAckPending != want.MaxAckPending {
		d = append(d, "max_ack_pending")
	}
	if !slices.Equal(have.BackOff, want.BackOff) {
		d = append(d, "backoff")
	}
	return d
}
