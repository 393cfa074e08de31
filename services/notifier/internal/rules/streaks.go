package rules

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/subjects"
)

// StreaksBucket holds each connector's streak of failed syncs.
const StreaksBucket = "NOTIFY_SYNC_FAILURES"

// maxKept bounds the failed runs a streak remembers; only reaching the
// threshold matters.
const maxKept = 16

// Streaks counts each connector's failed syncs since its last successful
// one, durably and idempotently: failures are remembered by run id and
// successes by stream sequence, so a redelivered or late event neither
// counts twice nor undoes a newer one.
type Streaks struct {
	kv jetstream.KeyValue
}

// OpenStreaks declares the bucket.
func OpenStreaks(ctx context.Context, js jetstream.JetStream, storage jetstream.StorageType, replicas int) (*Streaks, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StreaksBucket,
		Description: "accessbus notifier: each connector's failed syncs since its last successful one",
		History:     1,
		Storage:     storage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", StreaksBucket, err)
	}
	return &Streaks{kv: kv}, nil
}

// Streak is one connector's record.
type Streak struct {
	// LastSuccessSeq is the SYNC stream sequence of the latest completed run.
	LastSuccessSeq uint64 `json:"last_success_seq"`
	// Failures are the failed runs after it.
	Failures []FailedRun `json:"failures,omitempty"`
	// NotifiedRunID is the failure that made the owners be mailed in this
	// streak; empty until then.
	NotifiedRunID string `json:"notified_run_id,omitempty"`
}

// FailedRun is one failed run of a streak.
type FailedRun struct {
	RunID string `json:"run_id"`
	Seq   uint64 `json:"seq"`
}

// Failed counts a failed run. It reports whether this run is the one that
// brought the streak to threshold (again true when the same run is
// delivered again, so that an email cut short is retried; the delivery
// ledger keeps it to one email), and the streak's length.
func (s *Streaks) Failed(ctx context.Context, connector, runID string, seq uint64, threshold int) (bool, int, error) {
	var notify bool
	st, err := s.update(ctx, connector, func(st *Streak) bool {
		notify = false
		if seq != 0 && seq <= st.LastSuccessSeq {
			return false // failed before the latest success
		}
		for _, f := range st.Failures {
			if f.RunID == runID {
				notify = st.NotifiedRunID == runID
				return false
			}
		}
		st.Failures = append(st.Failures, FailedRun{RunID: runID, Seq: seq})
		slices.SortFunc(st.Failures, func(a, b FailedRun) int { return cmp.Compare(a.Seq, b.Seq) })
		if len(st.Failures) > maxKept {
			st.Failures = st.Failures[len(st.Failures)-maxKept:]
		}
		if len(st.Failures) >= threshold && st.NotifiedRunID == "" {
			st.NotifiedRunID = runID
			notify = true
		}
		return true
	})
	if err != nil {
		return false, 0, err
	}
	return notify, len(st.Failures), nil
}

// Completed ends the streak at a successful run's stream sequence.
func (s *Streaks) Completed(ctx context.Context, connector string, seq uint64) error {
	_, err := s.update(ctx, connector, func(st *Streak) bool {
		if seq <= st.LastSuccessSeq {
			return false
		}
		st.LastSuccessSeq = seq
		// Failures stored after this success in stream order (delivered
		// before it) still count.
		st.Failures = slices.DeleteFunc(st.Failures, func(f FailedRun) bool { return f.Seq <= seq })
		if !slices.ContainsFunc(st.Failures, func(f FailedRun) bool { return f.RunID == st.NotifiedRunID }) {
			st.NotifiedRunID = ""
		}
		return true
	})
	return err
}

// Get returns a connector's streak (zero when it has none).
func (s *Streaks) Get(ctx context.Context, connector string) (Streak, error) {
	st, _, err := s.get(ctx, connector)
	return st, err
}

func (s *Streaks) get(ctx context.Context, connector string) (Streak, uint64, error) {
	var st Streak
	e, err := s.kv.Get(ctx, connector)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, 0, nil
	}
	if err != nil {
		return st, 0, fmt.Errorf("read the sync failures of %s: %w", connector, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return st, 0, fmt.Errorf("decode the sync failures of %s: %w", connector, err)
	}
	return st, e.Revision(), nil
}

func (s *Streaks) update(ctx context.Context, connector string, change func(*Streak) bool) (Streak, error) {
	if err := subjects.ValidateConnectorID(connector); err != nil {
		return Streak{}, bus.Permanent(fmt.Errorf("sync run event: %w", err))
	}
	for range 32 {
		st, rev, err := s.get(ctx, connector)
		if err != nil {
			return st, err
		}
		if !change(&st) {
			return st, nil
		}
		b, err := json.Marshal(st)
		if err != nil {
			return st, fmt.Errorf("encode the sync failures of %s: %w", connector, err)
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, connector, b)
		} else {
			_, err = s.kv.Update(ctx, connector, b, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("store the sync failures of %s: %w", connector, err)
		}
		return st, nil
	}
	return Streak{}, fmt.Errorf("store the sync failures of %s: the record kept changing", connector)
}
