package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	syncsvc "github.com/accessbus/accessbus/services/sync"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks against the Okta simulator",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchSyncCmd(), newBenchRealtimeCmd(), newBenchProvisionCmd(), newBenchSimCmd(), newBenchNATSCmd())
	return cmd
}

// benchNATSCommand is the hidden command that runs a bench's JetStream
// server in a process of its own (syncsvc.ServeBenchNATS), with the
// settings of accessbus dev's embedded server.
const benchNATSCommand = "sync-nats"

func newBenchNATSCmd() *cobra.Command {
	return &cobra.Command{
		Use:    benchNATSCommand,
		Short:  "Run the JetStream server of accessbus bench sync (started by it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return syncsvc.ServeBenchNATS(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), func(dir string) (string, func(), error) {
				ns, err := startEmbeddedNATS(dir)
				if err != nil {
					return "", nil, err
				}
				return ns.ClientURL(), func() { ns.Shutdown(); ns.WaitForShutdown() }, nil
			})
		},
	}
}

// benchSimCommand is the hidden command that serves a bench's simulated
// org in a process of its own (syncsvc.ServeBenchSim).
const benchSimCommand = "sync-sim"

func newBenchSimCmd() *cobra.Command {
	return &cobra.Command{
		Use:    benchSimCommand,
		Short:  "Serve the simulated org of accessbus bench sync (started by it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return syncsvc.ServeBenchSim(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// benchSyncOptions are the flags of `accessbus bench sync`.
type benchSyncOptions struct {
	profile   string
	seed      uint64
	timeScale float64
	share     float64
	json      bool
	cpuProf   string
	memProf   string
	// simInProcess serves the org in the bench's own process, and
	// natsInProcess runs the JetStream server there.
	simInProcess  bool
	natsInProcess bool
	// gogc and memLimit set the garbage collector of the process that
	// syncs, as a sync service's deployment would (GOGC, GOMEMLIMIT);
	// the environment variables, when set, win.
	gogc     int
	memLimit int64
}

// Garbage collector settings of the bench's process, as a sync service's
// deployment would set them, unless GOGC or GOMEMLIMIT say otherwise: the
// heap may grow to five times what is live before a collection (a sync
// allocates 4 to 7 KB per event it publishes, nearly all of it short-lived,
// and collecting five times less often halved the collector's share of the
// CPU), and the collector works harder instead as the process nears
// 768 MiB, under the 1 GiB a sync of a large org is given.
const (
	benchGOGC     = 400
	benchMemLimit = 768 << 20
)

func newBenchSyncCmd() *cobra.Command {
	o := benchSyncOptions{}
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Time a full sync of a simulated org against its rate-limit bound, then a resync",
		Long: `Serves a generated org on the Okta simulator with Okta's Workforce rate
limits on a clock running --time-scale times faster than real time, in a
process of its own (as Okta is remote; --sim-in-process serves it in this
one), starts an embedded NATS JetStream (file storage in a temporary
directory, as accessbus dev runs it), and runs a full sync with the given
rate_limit_share, then a second full sync of the unchanged org.

For each sync it prints the wall time, the rate-limit bound (per bucket: its
requests / (share x its limit per window) x the window's real length; the
largest), their ratio, the API calls against the fewest that can read the org
at maximum page sizes, the 429s the simulator sent, the peak RSS of this process (the sync and the
embedded JetStream server), the CPU time it and the simulator's process spent,
and the events published. --json prints one JSON object per line, one per sync.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchSync(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.profile, "profile", "medium", "org size: small, medium or large")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the generated org")
	f.Float64Var(&o.timeScale, "time-scale", 100, "the simulated clock runs this many times faster than real time")
	f.Float64Var(&o.share, "share", 1.0, "rate_limit_share: the part of each bucket the sync may use, in (0, 1]")
	f.BoolVar(&o.json, "json", false, "print one JSON object per sync, one per line")
	f.BoolVar(&o.simInProcess, "sim-in-process", false, "serve the simulated org in this process instead of a child process")
	f.BoolVar(&o.natsInProcess, "nats-in-process", false, "run the JetStream server in this process, as accessbus dev does, instead of a child process")
	f.IntVar(&o.gogc, "gogc", benchGOGC, "GOGC of this process (the sync and the embedded JetStream server); the GOGC variable wins")
	f.Int64Var(&o.memLimit, "memory-limit", benchMemLimit, "GOMEMLIMIT of this process in bytes, 0 for none; the GOMEMLIMIT variable wins")
	f.StringVar(&o.cpuProf, "cpu-profile", "", "write a CPU profile of the run to this file (and of the NATS and simulator processes to FILE.NATS, FILE.simulator)")
	f.StringVar(&o.memProf, "mem-profile", "", "write a heap profile (allocations since the start) to this file after the run")
	_ = f.MarkHidden("cpu-profile")
	_ = f.MarkHidden("mem-profile")
	return cmd
}

func runBenchSync(ctx context.Context, o benchSyncOptions, stdout io.Writer) error {
	// Checked here too: Bench takes a zero share or scale for its default.
	if !(o.share > 0 && o.share <= 1) || !(o.timeScale >= 1) {
		return fmt.Errorf("bench sync: --share %v must be in (0, 1] and --time-scale %v at least 1: %w", o.share, o.timeScale, syncsvc.ErrBenchConfig)
	}
	if o.memLimit < 0 {
		return fmt.Errorf("bench sync: --memory-limit %d: %w", o.memLimit, syncsvc.ErrBenchConfig)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(o.gogc))
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && o.memLimit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(o.memLimit))
	}
	if o.cpuProf != "" {
		// The child processes profile themselves into <file>.NATS and
		// <file>.simulator.
		if err := os.Setenv(syncsvc.BenchChildProfileEnv, o.cpuProf); err != nil {
			return fmt.Errorf("bench sync: --cpu-profile: %w", err)
		}
	}
	exe, err := os.Executable()
	if err != nil && !(o.simInProcess && o.natsInProcess) {
		return fmt.Errorf("bench sync: find this executable to run the simulator and NATS: %w", err)
	}
	cfg := syncsvc.BenchConfig{
		Profile: o.profile, Seed: o.seed, TimeScale: o.timeScale, Share: o.share, Storage: jetstream.FileStorage,
	}
	var nc *nats.Conn
	if o.natsInProcess {
		dir, err := os.MkdirTemp("", "accessbus-bench-")
		if err != nil {
			return fmt.Errorf("bench sync: make a data dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		ns, err := startEmbeddedNATS(dir)
		if err != nil {
			return fmt.Errorf("bench sync: %w", err)
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		if nc, err = nats.Connect(ns.ClientURL(), nats.InProcessServer(ns), nats.Name("accessbus-bench")); err != nil {
			return fmt.Errorf("bench sync: connect to the embedded NATS: %w", err)
		}
	} else {
		np, err := syncsvc.StartBenchNATSProcess(ctx, []string{exe, "bench", benchNATSCommand})
		if err != nil {
			return fmt.Errorf("bench sync: %w", err)
		}
		defer func() { _ = np.Close() }()
		cfg.NATSProcess = np
		if nc, err = nats.Connect(np.URL, nats.Name("accessbus-bench")); err != nil {
			return fmt.Errorf("bench sync: connect to the NATS process: %w", err)
		}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("bench sync: %w", err)
	}
	cfg.JetStream = js
	if !o.simInProcess {
		cfg.SimCommand = []string{exe, "bench", benchSimCommand}
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return fmt.Errorf("bench sync: --cpu-profile: %w", err)
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench sync: --cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	runs, err := syncsvc.Bench(ctx, cfg)
	if err != nil {
		return err
	}
	if o.memProf != "" {
		if err := writeHeapProfile(o.memProf); err != nil {
			return fmt.Errorf("bench sync: --mem-profile: %w", err)
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		for _, r := range runs {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("bench sync: write results: %w", err)
			}
		}
		return nil
	}
	return printBenchTable(stdout, runs)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// printBenchTable prints the runs side by side, one column per sync.
func printBenchTable(w io.Writer, runs []syncsvc.BenchSync) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(syncsvc.BenchSync) string) {
		fmt.Fprint(tw, name+"\t")
		for _, r := range runs {
			fmt.Fprint(tw, f(r)+"\t")
		}
		fmt.Fprintln(tw)
	}
	row("sync", func(r syncsvc.BenchSync) string {
		if r.Sync == 1 {
			return "first"
		}
		return "unchanged org"
	})
	row("profile", func(r syncsvc.BenchSync) string { return r.Profile })
	row("wall (s)", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.2f", r.WallSeconds) })
	row("read, to first event (s)", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.2f", r.FirstEventSeconds) })
	row("rate-limit bound (s)", func(r syncsvc.BenchSync) string {
		return fmt.Sprintf("%.2f %s", r.RateLimitBoundSeconds, r.BindingBucket)
	})
	row("bound ratio", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.3f", r.BoundRatio) })
	row("api calls", func(r syncsvc.BenchSync) string { return fmt.Sprint(r.APICalls) })
	row("min api calls", func(r syncsvc.BenchSync) string { return fmt.Sprint(r.MinAPICalls) })
	row("calls ratio", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.3f", r.CallsRatio) })
	row("http 429", func(r syncsvc.BenchSync) string { return fmt.Sprint(r.HTTP429) })
	row("events published", func(r syncsvc.BenchSync) string { return fmt.Sprint(r.EventsPublished) })
	row("peak rss (MiB)", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.0f", float64(r.PeakRSSBytes)/(1<<20)) })
	row("cpu (s)", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.2f", r.CPUSeconds) })
	child := func(in bool, cpu float64, rss int64) string {
		if in {
			return "in process"
		}
		return fmt.Sprintf("%.2f s, %.0f MiB", cpu, float64(rss)/(1<<20))
	}
	row("simulator cpu, peak rss", func(r syncsvc.BenchSync) string { return child(r.SimInProcess, r.SimCPUSeconds, r.SimPeakRSSBytes) })
	row("nats cpu, peak rss", func(r syncsvc.BenchSync) string { return child(r.NATSInProcess, r.NATSCPUSeconds, r.NATSPeakRSSBytes) })
	row("gc cycles, allocated (MiB)", func(r syncsvc.BenchSync) string {
		return fmt.Sprintf("%d, %.0f", r.GCCycles, float64(r.AllocBytes)/(1<<20))
	})
	for _, b := range bucketNames(runs, func(r syncsvc.BenchSync) map[string]int64 { return r.CallsByBucket }) {
		row("calls "+b+" (min)", func(r syncsvc.BenchSync) string {
			return fmt.Sprintf("%d (%d)", r.CallsByBucket[b], r.MinCallsByBucket[b])
		})
		row("last call "+b+" (s)", func(r syncsvc.BenchSync) string { return fmt.Sprintf("%.2f", r.LastCallByBucket[b]) })
	}
	if len(runs) > 1 && runs[0].APICalls > 0 {
		fmt.Fprintf(tw, "resync calls / first\t%.3f\t\n", float64(runs[len(runs)-1].APICalls)/float64(runs[0].APICalls))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench sync: write results: %w", err)
	}
	return nil
}

// bucketNames is every Okta bucket any of runs has a figure for, sorted:
// the rows of a bench table, the same in every column.
func bucketNames[R any](runs []R, byBucket func(R) map[string]int64) []string {
	var names []string
	for _, r := range runs {
		for b := range byBucket(r) {
			if !slices.Contains(names, b) {
				names = append(names, b)
			}
		}
	}
	slices.Sort(names)
	return names
}
