package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
	cmd.AddCommand(newBenchSyncCmd(), newBenchRealtimeCmd(), newBenchProvisionCmd())
	return cmd
}

// benchSyncOptions are the flags of `accessbus bench sync`.
type benchSyncOptions struct {
	profile   string
	seed      uint64
	timeScale float64
	share     float64
	json      bool
	cpuProf   string
}

func newBenchSyncCmd() *cobra.Command {
	o := benchSyncOptions{}
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Time a full sync of a simulated org against its rate-limit bound, then a resync",
		Long: `Serves a generated org on the Okta simulator with Okta's Workforce rate
limits on a clock running --time-scale times faster than real time, starts an
embedded NATS JetStream (file storage in a temporary directory, as accessbus dev
runs it), and runs a full sync with the given rate_limit_share, then a second
full sync of the unchanged org.

For each sync it prints the wall time, the rate-limit bound (per bucket: its
requests / (share x its limit per window) x the window's real length; the
largest), their ratio, the API calls against the fewest that can read the org
at maximum page sizes, the 429s the simulator sent, the peak RSS and the events
published. --json prints one JSON object per line, one per sync.`,
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
	f.StringVar(&o.cpuProf, "cpu-profile", "", "write a CPU profile of the run to this file")
	_ = f.MarkHidden("cpu-profile")
	return cmd
}

func runBenchSync(ctx context.Context, o benchSyncOptions, stdout io.Writer) error {
	// Checked here too: Bench takes a zero share or scale for its default.
	if !(o.share > 0 && o.share <= 1) || !(o.timeScale >= 1) {
		return fmt.Errorf("bench sync: --share %v must be in (0, 1] and --time-scale %v at least 1: %w", o.share, o.timeScale, syncsvc.ErrBenchConfig)
	}
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
	nc, err := nats.Connect(ns.ClientURL(), nats.InProcessServer(ns), nats.Name("accessbus-bench"))
	if err != nil {
		return fmt.Errorf("bench sync: connect to the embedded NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("bench sync: %w", err)
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
	runs, err := syncsvc.Bench(ctx, syncsvc.BenchConfig{
		Profile: o.profile, Seed: o.seed, TimeScale: o.timeScale, Share: o.share,
		JetStream: js, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return err
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
	var buckets []string
	for _, r := range runs {
		for b := range r.CallsByBucket {
			if !slices.Contains(buckets, b) {
				buckets = append(buckets, b)
			}
		}
	}
	slices.Sort(buckets)
	for _, b := range buckets {
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
