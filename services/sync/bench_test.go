package syncsvc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/testkit"
)

// Arguments that make this test binary a bench's simulator process (see
// TestMain), or one that exits without serving.
const (
	argServeSim  = "serve-bench-sim"
	argNoSim     = "exit-without-serving"
	argServeNATS = "serve-bench-nats" // followed by the URL of a server to hand out
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case argServeSim:
			if err := ServeBenchSim(context.Background(), os.Stdin, os.Stdout); err != nil {
				os.Stderr.WriteString(err.Error() + "\n")
				os.Exit(1)
			}
			os.Exit(0)
		case argNoSim:
			os.Exit(3)
		case argServeNATS:
			// A stand-in that hands out a server the test started: the
			// protocol and the measurement are what is tested here.
			err := ServeBenchNATS(context.Background(), os.Stdin, os.Stdout, func(dir string) (string, func(), error) {
				if _, err := os.Stat(dir); err != nil {
					return "", nil, err
				}
				return os.Args[2], func() {}, nil
			})
			if err != nil {
				os.Stderr.WriteString(err.Error() + "\n")
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

func benchJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	return testkit.StartNATS(t).JetStream(t)
}

// The bench with its simulator in a child process: two syncs whose figures
// come from the child's counters, and the child's own CPU and memory.
func TestBenchWithSimulatorProcess(t *testing.T) {
	runs, err := Bench(t.Context(), BenchConfig{
		Profile: "small", Seed: 2, TimeScale: 1000, JetStream: benchJetStream(t), Storage: jetstream.MemoryStorage,
		SimCommand: []string{os.Args[0], argServeSim},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d syncs, want 2", len(runs))
	}
	first, second := runs[0], runs[1]
	for _, r := range runs {
		if r.SimInProcess || r.SimPeakRSSBytes <= 0 || r.PeakRSSBytes <= 0 || r.CPUSeconds <= 0 {
			t.Errorf("sync %d: simulator in process %v, its peak RSS %d, ours %d, our CPU %v", r.Sync, r.SimInProcess, r.SimPeakRSSBytes, r.PeakRSSBytes, r.CPUSeconds)
		}
		if r.HTTP429 != 0 || r.ClientHTTP429 != 0 {
			t.Errorf("sync %d: 429s %d (simulator) %d (client)", r.Sync, r.HTTP429, r.ClientHTTP429)
		}
	}
	if first.MinAPICalls <= 0 || first.APICalls < first.MinAPICalls || first.EventsPublished == 0 {
		t.Errorf("first sync: %d calls, minimum %d, %d events", first.APICalls, first.MinAPICalls, first.EventsPublished)
	}
	if second.APICalls <= 0 || second.APICalls*4 > first.APICalls || second.EventsPublished != 0 {
		t.Errorf("unchanged org: %d calls (first %d), %d events", second.APICalls, first.APICalls, second.EventsPublished)
	}
}

// A simulator that cannot serve fails the bench with its reason, and one
// that exits without a word fails it too, instead of hanging it.
func TestBenchSimulatorProcessFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile string
		arg     string
		says    string
	}{
		{"unknown profile", "huge", argServeSim, "huge"},
		{"exits without serving", "small", argNoSim, "exited before serving"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := Bench(ctx, BenchConfig{
				Profile: tc.profile, TimeScale: 1000, JetStream: benchJetStream(t), Storage: jetstream.MemoryStorage,
				SimCommand: []string{os.Args[0], tc.arg},
			})
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("bench: %v, want an error saying %q", err, tc.says)
			}
		})
	}
	if _, err := startBenchOrgProcess(t.Context(), benchSimConfig{Profile: "small"}, nil); !errors.Is(err, ErrBenchConfig) {
		t.Errorf("no command: %v, want ErrBenchConfig", err)
	}
}

// ServeBenchSim answers once it serves, with the key of the counters it
// serves, and stops when its input closes.
func TestServeBenchSim(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeBenchSim(t.Context(), inR, outW) }()
	if _, err := io.WriteString(inW, `{"profile":"small","seed":1,"time_scale":1000}`+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(outR).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var r benchSimReady
	if err := json.Unmarshal(line, &r); err != nil || r.URL == "" || r.Token == "" || r.AdminKey == "" || r.MinCalls.Total <= 0 {
		t.Fatalf("answer %s: %v", line, err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if _, err := simCounters(t.Context(), hc, r.URL, r.AdminKey); err != nil {
		t.Errorf("counters with the admin key: %v", err)
	}
	if _, err := simCounters(t.Context(), hc, r.URL, "wrong"); err == nil {
		t.Error("counters with a wrong key were served")
	}
	_ = inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still serving after its input closed")
	}
	if _, err := simCounters(t.Context(), hc, r.URL, r.AdminKey); err == nil {
		t.Error("still answering after its input closed")
	}
	// A configuration that is not JSON is refused.
	if err := ServeBenchSim(t.Context(), strings.NewReader("profile small\n"), io.Discard); err == nil {
		t.Error("a configuration that is not JSON was accepted")
	}
}

// The bench with its JetStream server in a child process: the figures
// name that process's CPU time and memory.
func TestBenchWithNATSProcess(t *testing.T) {
	n := testkit.StartNATS(t)
	np, err := StartBenchNATSProcess(t.Context(), []string{os.Args[0], argServeNATS, n.URL})
	if err != nil {
		t.Fatal(err)
	}
	if np.URL != n.URL {
		t.Errorf("URL %q, want %q", np.URL, n.URL)
	}
	runs, err := Bench(t.Context(), BenchConfig{
		Profile: "small", TimeScale: 1000, JetStream: n.JetStream(t), Storage: jetstream.MemoryStorage, NATSProcess: np,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.NATSInProcess || r.NATSPeakRSSBytes <= 0 || !r.SimInProcess {
			t.Errorf("sync %d: NATS in process %v, its peak RSS %d; simulator in process %v", r.Sync, r.NATSInProcess, r.NATSPeakRSSBytes, r.SimInProcess)
		}
	}
	if err := np.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := StartBenchNATSProcess(t.Context(), []string{os.Args[0], argNoSim}); err == nil || !strings.Contains(err.Error(), "exited before serving") {
		t.Errorf("a NATS process that exits: %v", err)
	}
}
