package syncsvc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A bench's child process (the simulated org, the JetStream server) is told
// what to do in one JSON line on its stdin, answers one JSON line on its
// stdout once it serves, and serves until its stdin closes: a bench that
// dies takes its children with it.

// benchChild is a running child process of a bench.
type benchChild struct {
	name string
	pid  int
	stop func() error
}

// startBenchChild starts command (its first element is the executable),
// writes config to it and decodes its answer into ready. name says what
// the child is in errors.
func startBenchChild(ctx context.Context, name string, command []string, config, ready any) (*benchChild, error) {
	if len(command) == 0 {
		return nil, fmt.Errorf("%w: empty %s command", ErrBenchConfig, name)
	}
	// Not CommandContext: the child stops when its stdin closes, which
	// stop does, and a bench cancelled mid-sync still stops it.
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s process: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s process: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s process: %w", name, err)
	}
	var (
		waitOnce sync.Once
		waitErr  error
	)
	wait := func() error {
		waitOnce.Do(func() { waitErr = cmd.Wait() })
		return waitErr
	}
	c := &benchChild{name: name, pid: cmd.Process.Pid}
	c.stop = func() error {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- wait() }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("the %s process: %w", name, err)
			}
			return nil
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("the %s process did not stop when asked: killed", name)
		}
	}
	line, err := json.Marshal(config)
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("configure the %s process: %w", name, err)
	}
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("configure the %s process: %w", name, err)
	}
	answer := make(chan error, 1)
	go func() {
		// Generating the large org takes tens of seconds.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		if !sc.Scan() {
			answer <- fmt.Errorf("the %s process exited before serving: %v", name, sc.Err())
			return
		}
		if err := json.Unmarshal(sc.Bytes(), ready); err != nil {
			answer <- fmt.Errorf("the %s process answered a line that is not its JSON answer: %w", name, err)
			return
		}
		answer <- nil
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-answer:
		if err != nil {
			_ = c.stop()
			return nil, err
		}
	case <-ctx.Done():
		_ = c.stop()
		return nil, fmt.Errorf("start the %s process: %w", name, ctx.Err())
	}
	return c, nil
}

// usage returns the child's CPU time so far and its peak resident set.
func (c *benchChild) usage() (time.Duration, int64, bool) {
	cpu, okCPU := processCPU(c.pid)
	rss := peakRSSOf(strconv.Itoa(c.pid))
	return cpu, rss, okCPU && rss > 0
}

// BenchChildProfileEnv names the environment variable that makes a bench's
// child processes write a CPU profile to its value followed by "." and the
// child's name (NATS, simulator); `accessbus bench sync --cpu-profile`
// sets it.
const BenchChildProfileEnv = "ACCESSBUS_BENCH_CPU_PROFILE"

// startChildProfile starts a CPU profile written to path until the
// returned function is called.
func startChildProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// serveBenchChild is the child's side: it reads its configuration into
// config, runs start, answers what start returns, and returns once in
// closes or ctx ends (or done, when not nil, closes), after calling stop.
func serveBenchChild(ctx context.Context, name string, in io.Reader, out io.Writer, config any,
	start func() (ready any, stop func(), done <-chan struct{}, err error)) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return fmt.Errorf("bench %s: read its configuration: %w", name, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(line), config); err != nil {
		return fmt.Errorf("bench %s: configuration %q: %w", name, strings.TrimSpace(string(line)), err)
	}
	ready, stop, done, err := start()
	if err != nil {
		return fmt.Errorf("bench %s: %w", name, err)
	}
	defer stop()
	if prefix := os.Getenv(BenchChildProfileEnv); prefix != "" {
		stopProfile, err := startChildProfile(prefix + "." + name)
		if err != nil {
			return fmt.Errorf("bench %s: %w", name, err)
		}
		defer stopProfile()
	}
	b, err := json.Marshal(ready)
	if err != nil {
		return fmt.Errorf("bench %s: answer: %w", name, err)
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("bench %s: answer: %w", name, err)
	}
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
	case <-done:
	}
	return nil
}

// BenchNATS is a JetStream server a bench runs in a child process
// (StartBenchNATSProcess), as NATS runs apart from the services in
// production.
type BenchNATS struct {
	// URL is the server's client URL.
	URL   string
	child *benchChild
}

// benchNATSReady is what a bench's NATS process answers once it serves.
type benchNATSReady struct {
	URL string `json:"url"`
}

// StartBenchNATSProcess runs a JetStream server in a child process:
// command (its first element is the executable) must call ServeBenchNATS.
func StartBenchNATSProcess(ctx context.Context, command []string) (*BenchNATS, error) {
	var r benchNATSReady
	c, err := startBenchChild(ctx, "NATS", command, struct{}{}, &r)
	if err != nil {
		return nil, err
	}
	if r.URL == "" {
		_ = c.stop()
		return nil, errors.New("the NATS process answered no URL")
	}
	return &BenchNATS{URL: r.URL, child: c}, nil
}

// Close stops the server.
func (n *BenchNATS) Close() error { return n.child.stop() }

// usage is the server process's CPU time so far and peak resident set;
// ok false for a nil BenchNATS.
func (n *BenchNATS) usage() (time.Duration, int64, bool) {
	if n == nil {
		return 0, 0, false
	}
	return n.child.usage()
}

// ServeBenchNATS is the NATS process of a bench: serve starts a JetStream
// server storing under dir and returns its client URL and how to stop it;
// ServeBenchNATS answers the URL on out and serves until in closes or ctx
// ends. The storage directory is its own, removed afterwards.
func ServeBenchNATS(ctx context.Context, in io.Reader, out io.Writer, serve func(dir string) (url string, stop func(), err error)) error {
	var none struct{}
	return serveBenchChild(ctx, "NATS", in, out, &none, func() (any, func(), <-chan struct{}, error) {
		dir, err := os.MkdirTemp("", "accessbus-bench-nats-")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("make a storage directory: %w", err)
		}
		url, stop, err := serve(dir)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, nil, err
		}
		return benchNATSReady{URL: url}, func() { stop(); _ = os.RemoveAll(dir) }, nil, nil
	})
}
