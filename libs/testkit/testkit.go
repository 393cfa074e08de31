// Package testkit gives tests the real parts they run against: an embedded
// JetStream server per test, a Redis connection, and readers of what was
// published on the bus.
package testkit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// NATS is an embedded nats-server with JetStream, started for one test.
type NATS struct {
	Server *server.Server
	// URL is the client URL of the server (random port on 127.0.0.1).
	URL string
	// StoreDir is the JetStream store directory (a temp dir of the test).
	StoreDir string
}

// StartNATS starts an embedded JetStream server on a random loopback port with
// its store in a temp dir; it is shut down when the test ends.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	dir := tb.TempDir()
	ns := startServer(tb, dir)
	return &NATS{Server: ns, URL: ns.ClientURL(), StoreDir: dir}
}

func startServer(tb testing.TB, dir string) *server.Server {
	tb.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
		// Tests create many streams and consumers; keep memory modest.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("start embedded nats-server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatalf("embedded nats-server not ready within 10s")
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Restart shuts the server down and starts a new one on the same store dir
// (and a new port), as after a crash or a deploy; URL is updated.
func (n *NATS) Restart(tb testing.TB) {
	tb.Helper()
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.Server = startServer(tb, n.StoreDir)
	n.URL = n.Server.ClientURL()
}

// Connect opens a client connection that is closed when the test ends.
func (n *NATS) Connect(tb testing.TB) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(n.URL, nats.Name(tb.Name()), nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatalf("connect to embedded nats-server: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream opens a connection and returns its JetStream context.
func (n *NATS) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(n.Connect(tb))
	if err != nil {
		tb.Fatalf("jetstream context: %v", err)
	}
	return js
}

// RedisURL returns the Redis address tests use: REDIS_URL, or 127.0.0.1:6379.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "127.0.0.1:6379"
}

// Redis returns a client of the test Redis with a key prefix unique to the
// test, deleting the test's keys at the end. When nothing answers, the test
// fails with a clear message if CI is set, and is skipped otherwise.
func Redis(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	raw := RedisURL()
	var opts *redis.Options
	if strings.Contains(raw, "://") {
		o, err := redis.ParseURL(raw)
		if err != nil {
			tb.Fatalf("REDIS_URL %q: %v", raw, err)
		}
		opts = o
	} else {
		opts = &redis.Options{Addr: raw}
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		msg := fmt.Sprintf("Redis at %s does not answer (%v): start redis-server or set REDIS_URL", raw, err)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	prefix := fmt.Sprintf("test:%s:%d:", strings.ReplaceAll(tb.Name(), "/", "_"), time.Now().UnixNano())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// Recorder collects every message published on a subject filter from the
// moment it is created (or from the start of the stream).
type Recorder struct {
	mu   sync.Mutex
	msgs []jetstream.Msg
	cond chan struct{}
}

// Record starts collecting messages of stream whose subject matches filter,
// from the beginning of the stream when fromStart is true, else only new ones.
func Record(tb testing.TB, js jetstream.JetStream, stream, filter string, fromStart bool) *Recorder {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	policy := jetstream.DeliverNewPolicy
	if fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  policy,
	})
	if err != nil {
		tb.Fatalf("record %s on %s: %v", filter, stream, err)
	}
	r := &Recorder{cond: make(chan struct{})}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		close(r.cond)
		r.cond = make(chan struct{})
		r.mu.Unlock()
	})
	if err != nil {
		tb.Fatalf("record %s on %s: %v", filter, stream, err)
	}
	tb.Cleanup(cc.Stop)
	return r
}

// Messages returns a copy of what was collected so far.
func (r *Recorder) Messages() []jetstream.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jetstream.Msg(nil), r.msgs...)
}

// WaitFor waits until at least n messages were collected and returns them;
// it fails the test after timeout, naming how many arrived.
func (r *Recorder) WaitFor(tb testing.TB, n int, timeout time.Duration) []jetstream.Msg {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got, ch := len(r.msgs), r.cond
		r.mu.Unlock()
		if got >= n {
			return r.Messages()
		}
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("waited %s for %d messages, got %d", timeout, n, got)
			return nil
		}
	}
}
