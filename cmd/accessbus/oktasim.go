package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/accessbus/accessbus/libs/oktasim"
)

// oktasimOptions are the flags of `accessbus oktasim`.
type oktasimOptions struct {
	profile       string
	seed          uint64
	addr          string
	rateLimits    string
	timeScale     float64
	errorRate     float64
	latency       time.Duration
	cutRate       float64
	membershipLag time.Duration
	tls           bool
	certOut       string
	tokensOut     string
	adminKey      string
}

func newOktasimCmd() *cobra.Command {
	o := oktasimOptions{}
	cmd := &cobra.Command{
		Use:   "oktasim",
		Short: "Serve a simulated Okta org for tests, benchmarks and demos",
		Long: `Generates an Okta org (users, groups, apps, admin roles; the same seed
gives the same org) and serves Okta's Management API for it, with Okta's
paging, rate limits, errors, tokens and admin-role permissions, System Log
and event hooks, until interrupted.

It prints the org URL, the API tokens of its read-only, app+group and super
admins, and the key of the simulator's own /_sim/ endpoints (header
X-Sim-Admin-Key). --tokens-out writes the tokens as JSON and --cert-out the
CA certificate of --tls, each replaced atomically, so a reader that waits for
the file sees it whole. The org's clock starts at 2026-11-01T09:00:00Z and
runs --time-scale times faster than real time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOktasim(cmd.Context(), o, cmd.OutOrStdout(), nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.profile, "profile", "small", "org size: small (~200 users), medium (10,000) or large (100,000)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the generated org and of the injected faults")
	f.StringVar(&o.addr, "addr", "127.0.0.1:8443", "listen address (port 0 picks a free port)")
	f.StringVar(&o.rateLimits, "rate-limits", "workforce", "Okta rate-limit profile: workforce, enterprise, free or none")
	f.Float64Var(&o.timeScale, "time-scale", 1, "how many times faster than real time the org's clock runs")
	f.Float64Var(&o.errorRate, "error-rate", 0, "fraction of API requests answered 500 (0 to 1)")
	f.DurationVar(&o.latency, "latency", 0, "latency added to every API request")
	f.Float64Var(&o.cutRate, "cut-rate", 0, "fraction of API responses cut off in the middle of the body (0 to 1)")
	f.DurationVar(&o.membershipLag, "membership-lag", 0, "how long group membership changes take to show on reads (simulated time)")
	f.BoolVar(&o.tls, "tls", false, "serve HTTPS with a certificate from a CA made for this run")
	f.StringVar(&o.certOut, "cert-out", "", "write the CA certificate (PEM) of --tls to this file")
	f.StringVar(&o.tokensOut, "tokens-out", "", "write the admin tokens as JSON to this file")
	f.StringVar(&o.adminKey, "admin-key", "", "key of the /_sim/ endpoints (default: a random one, printed)")
	return cmd
}

// oktasimReady is told the running simulator once it serves (tests use it).
type oktasimReady func(*oktasim.Running)

func (o oktasimOptions) config() (oktasim.Config, error) {
	limits, err := oktasim.RateLimitProfile(o.rateLimits)
	if err != nil {
		return oktasim.Config{}, fmt.Errorf("--rate-limits: %w", err)
	}
	switch {
	case o.timeScale < 1:
		return oktasim.Config{}, fmt.Errorf("--time-scale %v: must be at least 1", o.timeScale)
	case o.errorRate < 0 || o.errorRate > 1:
		return oktasim.Config{}, fmt.Errorf("--error-rate %v: must be between 0 and 1", o.errorRate)
	case o.cutRate < 0 || o.cutRate > 1:
		return oktasim.Config{}, fmt.Errorf("--cut-rate %v: must be between 0 and 1", o.cutRate)
	case o.latency < 0:
		return oktasim.Config{}, fmt.Errorf("--latency %v: must not be negative", o.latency)
	case o.membershipLag < 0:
		return oktasim.Config{}, fmt.Errorf("--membership-lag %v: must not be negative", o.membershipLag)
	case o.certOut != "" && !o.tls:
		return oktasim.Config{}, fmt.Errorf("--cert-out needs --tls")
	}
	key := o.adminKey
	if key == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return oktasim.Config{}, fmt.Errorf("make an admin key: %w", err)
		}
		key = hex.EncodeToString(b)
	}
	return oktasim.Config{
		Profile: o.profile, Seed: o.seed, Addr: o.addr, RateLimits: limits, TimeScale: o.timeScale,
		Faults: oktasim.Faults{ErrorRate: o.errorRate, Latency: o.latency, CutRate: o.cutRate, MembershipLag: o.membershipLag},
		TLS:    o.tls, AdminKey: key,
	}, nil
}

// runOktasim serves the org until ctx ends.
func runOktasim(ctx context.Context, o oktasimOptions, stdout io.Writer, ready oktasimReady) (err error) {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	run, err := oktasim.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// A fresh context: ctx is over by now, and requests in flight
		// deserve a moment to finish.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, run.Close(stopCtx))
	}()
	if o.certOut != "" {
		if err := writeFileAtomic(o.certOut, run.CACertPEM, 0o644); err != nil {
			return fmt.Errorf("--cert-out: %w", err)
		}
	}
	s := run.Generated.Summary
	fmt.Fprintf(stdout, "oktasim: %s org (seed %d) at %s\n", o.profile, o.seed, run.URL)
	fmt.Fprintf(stdout, "  %d users, %d groups, %d memberships, %d apps, %d app users, %d role assignments; rate limits %s\n",
		s.Users, s.Groups, s.Memberships, s.Apps, s.AppUsers, s.RoleAssignments, cfg.RateLimits.Name)
	fmt.Fprintf(stdout, "  read_only_admin  %s\n", run.Tokens.ReadOnlyAdmin)
	fmt.Fprintf(stdout, "  app_group_admin  %s\n", run.Tokens.AppGroupAdmin)
	fmt.Fprintf(stdout, "  super_admin      %s\n", run.Tokens.SuperAdmin)
	fmt.Fprintf(stdout, "  admin key        %s (header X-Sim-Admin-Key on %s/_sim/)\n", cfg.AdminKey, run.URL)
	if o.certOut != "" {
		fmt.Fprintf(stdout, "  CA certificate   %s\n", o.certOut)
	}
	// The tokens file comes last: whoever waits for it may start at once.
	if o.tokensOut != "" {
		b, err := json.MarshalIndent(run.Tokens, "", "  ")
		if err != nil {
			return fmt.Errorf("--tokens-out: %w", err)
		}
		if err := writeFileAtomic(o.tokensOut, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("--tokens-out: %w", err)
		}
	}
	if ready != nil {
		ready(run)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-run.Done():
		if err := run.Err(); err != nil {
			return fmt.Errorf("oktasim stopped serving: %w", err)
		}
		return nil
	}
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path, so that a reader never sees a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		_ = tmp.Close()
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(name, path); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
