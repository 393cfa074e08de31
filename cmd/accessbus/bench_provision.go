package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/accessbus/accessbus/services/provisioning"
)

// benchProvisionOptions are the flags of `accessbus bench provision`.
type benchProvisionOptions struct {
	json          bool
	requests      int
	timeScale     float64
	share         float64
	seed          uint64
	mix           string
	workers       int
	unlimitedRate float64
	cpuProf       string
}

func newBenchProvisionCmd() *cobra.Command {
	o := benchProvisionOptions{}
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Measure how fully provisioning uses Okta's rate limit, and its latency",
		Long: `Runs the provisioning service as accessbus dev does (an embedded NATS
JetStream with file storage in a temporary directory) against the Okta
simulator's small org, with a connector on the App and Group Administrator
token (Connected, rate_limit_share --share), in two runs:

  limited    Okta's Workforce rate limits on a clock running --time-scale
             times faster than real time; --requests requests are published
             on provisioning.<connector>.request at once;
  unlimited  no rate limits; the same number of requests published at a
             steady --unlimited-rate per second (0: the throughput the
             limited run achieved), so the latencies are those of the
             service, not of a queue.

Requests are group memberships, mixed by --mix (kind=weight: grant, a
permanent grant; revoke, of a membership made before measuring; timed, a
grant for 1, 4, 8 or 24 hours). Each request has a (user, group) pair of its
own, among users and groups added to the org for the run, so each one writes
to Okta: PUT or DELETE /api/v1/groups/{g}/users/{u}, in the groups bucket
(500 a minute).

For each run it prints requests, succeeded, failed, the latency from a
request's publish to its result's storage (p50_ms, p90_ms, p99_ms), the 429s
the simulator sent (http_429), the API calls and writes by bucket, and, for
the limited run, bucket_utilization: the groups bucket's writes per window
over share x limit, from the first write to the last result (the queue is
never empty in between). docs/performance.md has the formula and figures.

--json prints one JSON object per line, the limited run first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchProvision(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print one JSON object per run, one per line, the limited run first")
	f.IntVar(&o.requests, "requests", 5000, "requests per run")
	f.Float64Var(&o.timeScale, "time-scale", 100, "the simulated clock and the rate budget run this many times faster than real time (limited run)")
	f.Float64Var(&o.share, "share", 1.0, "rate_limit_share: the part of each bucket the connector may use, in (0, 1]")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the generated org and of the requests' order")
	f.StringVar(&o.mix, "mix", provisioning.DefaultMix.String(), "requests of each kind, as kind=weight: grant, revoke, timed (time-bound grant)")
	f.IntVar(&o.workers, "workers", provisioning.DefaultBenchWorkers, "requests the service carries out at once (ACCESSBUS_PROVISIONING_WORKERS)")
	f.Float64Var(&o.unlimitedRate, "unlimited-rate", 0, "requests per second submitted in the unlimited run; 0: the limited run's throughput")
	f.StringVar(&o.cpuProf, "cpu-profile", "", "write a CPU profile of the runs to this file")
	_ = f.MarkHidden("cpu-profile")
	return cmd
}

func runBenchProvision(ctx context.Context, o benchProvisionOptions, stdout io.Writer) error {
	mix, err := provisioning.ParseMix(o.mix)
	if err != nil {
		return fmt.Errorf("bench provision: --mix: %w", err)
	}
	// Checked here too: Bench takes a zero for its default.
	if o.requests < 1 || !(o.share > 0 && o.share <= 1) || !(o.timeScale >= 1) || o.workers < 1 || !(o.unlimitedRate >= 0) {
		return fmt.Errorf("bench provision: --requests %d and --workers %d must be 1 or more, --share %v in (0, 1], --time-scale %v at least 1 and --unlimited-rate %v 0 or more: %w",
			o.requests, o.workers, o.share, o.timeScale, o.unlimitedRate, provisioning.ErrBenchConfig)
	}
	dir, err := os.MkdirTemp("", "accessbus-bench-")
	if err != nil {
		return fmt.Errorf("bench provision: make a data dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ns, err := startEmbeddedNATS(dir)
	if err != nil {
		return fmt.Errorf("bench provision: %w", err)
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	nc, err := nats.Connect(ns.ClientURL(), nats.InProcessServer(ns), nats.Name("accessbus-bench"))
	if err != nil {
		return fmt.Errorf("bench provision: connect to the embedded NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("bench provision: %w", err)
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return fmt.Errorf("bench provision: --cpu-profile: %w", err)
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench provision: --cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	runs, err := provisioning.Bench(ctx, provisioning.BenchConfig{
		Requests: o.requests, TimeScale: o.timeScale, Share: o.share, Seed: o.seed, Mix: mix,
		Workers: o.workers, UnlimitedRate: o.unlimitedRate, JetStream: js, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		for _, r := range runs {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("bench provision: write results: %w", err)
			}
		}
		return nil
	}
	return printBenchProvisionTable(stdout, runs)
}

// printBenchProvisionTable prints the runs side by side, one column each.
func printBenchProvisionTable(w io.Writer, runs []provisioning.BenchResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(provisioning.BenchResult) string) {
		fmt.Fprint(tw, name+"\t")
		for _, r := range runs {
			fmt.Fprint(tw, f(r)+"\t")
		}
		fmt.Fprintln(tw)
	}
	row("run", func(r provisioning.BenchResult) string { return r.Run })
	row("rate limits", func(r provisioning.BenchResult) string { return r.RateLimits })
	row("submitted", func(r provisioning.BenchResult) string {
		if r.SubmitRate == 0 {
			return "at once"
		}
		return fmt.Sprintf("%.0f/s", r.SubmitRate)
	})
	row("requests", func(r provisioning.BenchResult) string { return fmt.Sprint(r.Requests) })
	row("succeeded", func(r provisioning.BenchResult) string { return fmt.Sprint(r.Succeeded) })
	row("failed", func(r provisioning.BenchResult) string { return fmt.Sprint(r.Failed) })
	row("bucket utilization", func(r provisioning.BenchResult) string {
		if r.BucketUtilization == nil {
			return "-"
		}
		return fmt.Sprintf("%.3f (%s)", *r.BucketUtilization, r.UtilizationBucket)
	})
	row("writes per window (max)", func(r provisioning.BenchResult) string {
		if r.BucketUtilization == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f (%d) of %.0f", r.WritesPerWindow, r.MaxWritesPerWindow, r.Share*float64(r.BucketLimit))
	})
	row("p50 ms", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.1f", r.P50MS) })
	row("p90 ms", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.1f", r.P90MS) })
	row("p99 ms", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.1f", r.P99MS) })
	row("max ms", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.1f", r.MaxMS) })
	row("http 429", func(r provisioning.BenchResult) string { return fmt.Sprint(r.HTTP429) })
	row("wall (s)", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.2f", r.WallSeconds) })
	row("throughput (/s)", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.0f", r.Throughput) })
	row("cpu ms per request", func(r provisioning.BenchResult) string { return fmt.Sprintf("%.3f", r.CPUMSPerRequest) })
	row("api calls", func(r provisioning.BenchResult) string { return fmt.Sprint(r.APICalls) })
	for _, b := range bucketNames(runs, func(r provisioning.BenchResult) map[string]int64 { return r.CallsByBucket }) {
		row("calls "+b+" (writes)", func(r provisioning.BenchResult) string {
			return fmt.Sprintf("%d (%d)", r.CallsByBucket[b], r.WritesByBucket[b])
		})
	}
	for i, r := range runs {
		for _, f := range r.Failures {
			fmt.Fprintf(tw, "failure (%s)\t%s\t\n", runs[i].Run, f)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench provision: write results: %w", err)
	}
	return nil
}
