package fullsync

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// nextWithin calls s.next, failing the test if it has not returned within
// a minute (the streamer under test lingers far longer).
func nextWithin(t *testing.T, s *streamer) []streamJob {
	t.Helper()
	jobs, err := nextOrErr(s)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return jobs
}

func nextOrErr(s *streamer) ([]streamJob, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.next(ctx)
}

type taken struct {
	jobs []streamJob
	err  error
}

// nextAsync calls s.next in a goroutine of its own.
func nextAsync(s *streamer) <-chan taken {
	ch := make(chan taken, 1)
	go func() {
		jobs, err := nextOrErr(s)
		ch <- taken{jobs, err}
	}()
	return ch
}

// check returns what nextAsync took.
func (ch taken) check(t *testing.T) []streamJob {
	t.Helper()
	if ch.err != nil {
		t.Fatalf("next: %v", ch.err)
	}
	return ch.jobs
}

func offerN(t *testing.T, s *streamer, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.offer(context.Background(), streamJob{key: fmt.Sprintf("c%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func keysOf(jobs []streamJob) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.key
	}
	return out
}

// Containers that come in one at a time are committed together: a
// committer waits for more while the oldest may linger, and takes a full
// batch at once.
func TestStreamerCommitsContainersTogether(t *testing.T) {
	s := newStreamer(nil)
	s.linger = time.Hour
	offerN(t, s, 0, 1)
	got := nextAsync(s)
	offerN(t, s, 1, streamBatch-1) // the batch fills up
	jobs := (<-got).check(t)
	if len(jobs) != streamBatch || jobs[0].key != "c0" || jobs[streamBatch-1].key != fmt.Sprintf("c%d", streamBatch-1) {
		t.Fatalf("first take: %d jobs %v, want the %d offered in order", len(jobs), keysOf(jobs), streamBatch)
	}

	// Fewer than a batch wait until the queue closes, then come at once.
	offerN(t, s, streamBatch, 3)
	got = nextAsync(s)
	s.close()
	if jobs := (<-got).check(t); len(jobs) != 3 || jobs[0].key != fmt.Sprintf("c%d", streamBatch) {
		t.Fatalf("after close: %v, want the 3 left", keysOf(jobs))
	}
	if jobs := nextWithin(t, s); len(jobs) != 0 {
		t.Fatalf("closed and empty: %v, want nothing", keysOf(jobs))
	}
}

// A container does not wait longer than the linger for company.
func TestStreamerLingerEnds(t *testing.T) {
	s := newStreamer(nil)
	s.linger = 10 * time.Millisecond
	offerN(t, s, 0, 2)
	if jobs := nextWithin(t, s); len(jobs) != 2 {
		t.Fatalf("after the linger: %v, want both", keysOf(jobs))
	}
}

// A committer waiting for company stops when its context ends.
func TestStreamerNextCancelled(t *testing.T) {
	s := newStreamer(nil)
	s.linger = time.Hour
	offerN(t, s, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.next(ctx); err == nil {
		t.Fatal("next on a cancelled context returned no error")
	}
}
