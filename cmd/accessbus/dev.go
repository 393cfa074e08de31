package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/catalog"
	"github.com/accessbus/accessbus/services/notifier"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
	"github.com/accessbus/accessbus/services/provisioning"
	syncsvc "github.com/accessbus/accessbus/services/sync"
)

// devOptions are the flags of `accessbus dev`.
type devOptions struct {
	dataDir         string
	natsURL         string
	redisURL        string
	httpAddr        string
	logLevel        string
	shutdownTimeout time.Duration
	demo            bool
	once            bool
	demoTimeScale   float64
	oktaDomain      string
	oktaTokenFile   string
	oktaConnector   string

	// The fields below are for in-process callers (`accessbus bench
	// realtime`), not flags; their zero values change nothing.

	// demoProfile is the demo org's profile (small, medium or large);
	// empty is small.
	demoProfile string
	// onDemoSim, when set, is handed the demo's simulator once it serves,
	// so that a benchmark can change the org directly and read its counts.
	onDemoSim func(*oktasim.Running)
	// tuneSync, when set, adjusts the sync service's configuration after it
	// was read from the environment (a benchmark sets the System Log poll
	// without touching the process environment).
	tuneSync func(*syncsvc.Config)
}

func newDevCmd() *cobra.Command {
	o := devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run every accessbus service in one process on an embedded NATS JetStream",
		Long: `Runs the sync, provisioning, catalog and notifier services in one process.

By default NATS JetStream is embedded, with its data under --data-dir, and the
shared rate budget and leases live in memory; --nats-url and --redis-url use
external servers instead. One HTTP listener (--http) serves /healthz, /readyz,
/metrics and the APIs. Ctrl-C stops it cleanly; a second start on the same
data dir resumes where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr(), nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir, "directory for the embedded NATS store and local state")
	f.StringVar(&o.natsURL, "nats-url", "", "use this NATS server (JetStream enabled) instead of the embedded one")
	f.StringVar(&o.redisURL, "redis-url", "", "share the rate budget and leases through this Redis instead of memory")
	f.StringVar(&o.httpAddr, "http", "127.0.0.1:8080", "HTTP listen address for health, metrics and APIs")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a clean shutdown may take")
	f.BoolVar(&o.demo, "demo", false, "also run the Okta simulator with a generated small org (tokens in <data-dir>/demo-okta.json) and a connector \"demo\" that syncs it")
	f.Float64Var(&o.demoTimeScale, "demo-time-scale", 1, "with --demo: run the simulator's clock (and the sync's rate budget) this many times faster")
	f.StringVar(&o.oktaDomain, "okta-domain", "", "also sync this Okta org (such as acme.okta.com) as connector --okta-connector; the API token comes from --okta-token-file or ACCESSBUS_OKTA_TOKEN")
	f.StringVar(&o.oktaTokenFile, "okta-token-file", "", "file holding the Okta API token for --okta-domain")
	f.StringVar(&o.oktaConnector, "okta-connector", "okta", "connector id for --okta-domain")
	f.BoolVar(&o.once, "once", false, "with --demo: exit 0 once the demo connector's first sync is published and consumed, printing one summary line")
	return cmd
}

// devReady is told the addresses once every service is ready (tests use it).
type devReady func(httpAddr, natsURL string)

func runDev(ctx context.Context, o devOptions, stdout, stderr io.Writer, ready devReady) error {
	level, err := telemetry.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if o.natsURL != "" {
		if err := service.ValidateNATSURL(o.natsURL); err != nil {
			return fmt.Errorf("--nats-url %q: %w", o.natsURL, err)
		}
	}
	if o.redisURL != "" {
		if _, err := service.ParseRedisURL(o.redisURL); err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
	}
	if o.once && !o.demo {
		return errors.New("--once needs --demo: it waits for the demo connector's first sync")
	}
	var oktaToken telemetry.Secret
	if o.oktaDomain != "" {
		if oktaToken, err = readOktaToken(o); err != nil {
			return err
		}
		if _, err := connectors.OrgURL(o.oktaDomain); err != nil {
			return fmt.Errorf("--okta-domain: %w", err)
		}
		if err := subjects.ValidateConnectorID(o.oktaConnector); err != nil {
			return fmt.Errorf("--okta-connector: %w", err)
		}
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	key, err := secrets.LoadOrCreateKeyFile(filepath.Join(o.dataDir, secretsKeyFile))
	if err != nil {
		return fmt.Errorf("secrets key: %w", err)
	}
	if o.demoTimeScale == 0 {
		o.demoTimeScale = 1
	}
	if o.demoTimeScale < 1 || (o.demoTimeScale != 1 && !o.demo) {
		return fmt.Errorf("--demo-time-scale %g: use 1 or more, with --demo", o.demoTimeScale)
	}
	// The embedded SMTP server that captures the notifier's mail, listening
	// now so that its address goes into the notifier's configuration.
	mailLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the mail capture server: %w", err)
	}
	mailServed := false
	defer func() {
		if !mailServed {
			_ = mailLn.Close()
		}
	}()
	// The first start creates the first Super Administrator: its API key is
	// printed once and kept in <data-dir>/admin-api-key, where the CLI
	// finds it.
	adminKey := func(_ context.Context, a catalog.BootstrapAdmin) error {
		p := filepath.Join(o.dataDir, adminAPIKeyFile)
		if err := os.WriteFile(p, []byte(a.Key.Reveal()+"\n"), 0o600); err != nil {
			return fmt.Errorf("write the first Super Administrator's API key: %w", err)
		}
		fmt.Fprintf(stdout, "first Super Administrator %s: API key %s (kept in %s; the CLI reads it from there)\n", a.Email, a.Key.Reveal(), p)
		return nil
	}
	services, err := devServices(ctx, key, o.demoTimeScale, o.tuneSync, mailLn.Addr().String(), adminKey)
	if err != nil {
		return err
	}
	unlock, err := lockDataDir(o.dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	log := telemetry.NewLogger(stderr, level).With("process", "accessbus-dev")
	ctx = telemetry.WithLogger(ctx, log)
	tel, err := telemetry.Setup(ctx, telemetry.ConfigFromEnv("accessbus-dev"))
	if err != nil {
		return err
	}
	// Until Serve takes them over, whatever was started is stopped again
	// (in reverse order) when a later step fails.
	var afterDrain []func(context.Context) error
	undo := []func(){func() { _ = tel.Shutdown(ctx) }}
	serving := false
	defer func() {
		if serving {
			return
		}
		for _, f := range afterDrain {
			_ = f(ctx)
		}
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()

	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("--http %s: %w", o.httpAddr, err)
	}
	undo = append(undo, func() { _ = ln.Close() })

	copts := service.ConnectOptions{
		Logger:     log,
		Telemetry:  tel,
		NATSURL:    o.natsURL,
		ClientName: "accessbus-dev",
		RedisURL:   o.redisURL,
	}
	natsURL := o.natsURL
	if natsURL == "" {
		ns, err := startEmbeddedNATS(filepath.Join(o.dataDir, "nats"))
		if err != nil {
			return err
		}
		natsURL = ns.ClientURL()
		urlFile := filepath.Join(o.dataDir, natsURLFile)
		afterDrain = append(afterDrain, func(context.Context) error {
			ns.Shutdown()
			ns.WaitForShutdown()
			_ = os.Remove(urlFile)
			return nil
		})
		if err := os.WriteFile(urlFile, []byte(natsURL+"\n"), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", urlFile, err)
		}
		copts.NATSURL = natsURL
		copts.NATSOptions = []nats.Option{nats.InProcessServer(ns)}
	}
	var demoLine string
	var sim *oktasim.Running
	if o.demo {
		var line string
		sim, line, err = startDemoOrg(ctx, o.dataDir, o.demoProfile, o.demoTimeScale)
		if err != nil {
			return err
		}
		if o.onDemoSim != nil {
			o.onDemoSim(sim)
		}
		demoLine = line
		afterDrain = append(afterDrain, sim.Close)
	}
	deps, err := service.Connect(ctx, copts)
	if err != nil {
		return err
	}
	capture, err := mailcapture.Serve(ctx, mailLn, deps.Bus.JetStream(), mailcapture.Options{Logger: log.With("component", "mail-capture")})
	if err != nil {
		return err
	}
	mailServed = true
	keys, err := auth.Open(ctx, deps.Bus.JetStream(), auth.Options{})
	if err != nil {
		return err
	}
	deps.Mux.Handle(mailPath, mailHandler(capture.Store(), keys))
	deps.Mux.Handle(mailPath+"/", mailHandler(capture.Store(), keys))
	// Stopped before the embedded NATS it stores into.
	afterDrain = append([]func(context.Context) error{capture.Close}, afterDrain...)

	var demoSim *oktasim.Running
	if o.demo {
		demoSim = sim
	}
	ctx, stopDev := context.WithCancelCause(ctx)
	defer stopDev(nil)
	var onceErr error
	var onceDone chan struct{}
	if o.once {
		onceDone = make(chan struct{})
	}
	demoReady := make(chan struct{})
	go announceWhenReady(ctx, deps.Health, func() {
		if demoSim != nil {
			if err := ensureDemoConnector(ctx, deps, key, demoSim); err != nil {
				log.Error("create the demo connector", "err", err)
				stopDev(fmt.Errorf("create the demo connector: %w", err))
				return
			}
		}
		if o.oktaDomain != "" {
			if err := ensureConnector(ctx, deps, key, o.oktaConnector, o.oktaDomain, oktaToken,
				&eventsv1.ConnectorOptions{SyncInactiveApps: true}, "accessbus dev --okta-domain"); err != nil {
				log.Error("create the Okta connector", "connector", o.oktaConnector, "err", err)
				stopDev(fmt.Errorf("create connector %s: %w", o.oktaConnector, err))
				return
			}
		}
		close(demoReady)
		fmt.Fprintf(stdout, "accessbus dev ready: http://%s  nats %s  data %s\n", ln.Addr(), natsURL, o.dataDir)
		if demoLine != "" {
			fmt.Fprintln(stdout, demoLine)
		}
		if os.Getenv("ACCESSBUS_SMTP_ADDR") == "" {
			fmt.Fprintf(stdout, "mail: the notifier's emails are captured by smtp://%s; read them with `accessbus mail list`\n", capture.Addr())
		}
		if o.oktaDomain != "" {
			fmt.Fprintf(stdout, "connector %s syncs %s: watch it with `accessbus sync status --connector %s --server http://%s`\n", o.oktaConnector, o.oktaDomain, o.oktaConnector, ln.Addr())
		}
		if ready != nil {
			ready(ln.Addr().String(), natsURL)
		}
	})
	if o.once {
		go func() {
			defer close(onceDone)
			line, err := waitFirstDemoSync(ctx, deps, demoReady)
			if err != nil {
				onceErr = err
			} else {
				fmt.Fprintln(stdout, line)
			}
			stopDev(errOnceDone)
		}()
	}
	serving = true
	err = service.Serve(ctx, service.Process{
		Listener:        ln,
		ShutdownTimeout: o.shutdownTimeout,
		Deps:            deps,
		Services:        services,
		AfterDrain:      afterDrain,
	})
	if onceDone != nil {
		<-onceDone
		if onceErr != nil {
			return errors.Join(onceErr, err)
		}
	}
	if c := context.Cause(ctx); c != nil && !errors.Is(c, errOnceDone) && !errors.Is(c, context.Canceled) {
		return errors.Join(c, err)
	}
	return err
}

// readOktaToken reads the API token of --okta-domain from --okta-token-file
// or ACCESSBUS_OKTA_TOKEN (never a flag value, which shell history and ps show).
func readOktaToken(o devOptions) (telemetry.Secret, error) {
	raw := os.Getenv("ACCESSBUS_OKTA_TOKEN")
	if o.oktaTokenFile != "" {
		b, err := os.ReadFile(o.oktaTokenFile)
		if err != nil {
			return telemetry.Secret{}, fmt.Errorf("--okta-token-file: %w", err)
		}
		raw = string(b)
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return telemetry.Secret{}, errors.New("--okta-domain needs an API token: put it in a file and pass --okta-token-file, or set ACCESSBUS_OKTA_TOKEN")
	}
	if strings.ContainsAny(raw, " \t\n") {
		return telemetry.Secret{}, errors.New("the Okta API token holds whitespace: give the token alone (without \"SSWS \")")
	}
	return telemetry.NewSecret(raw), nil
}

// secretsKeyFile holds the dev data dir's key for connector tokens.
const secretsKeyFile = "secrets.key"

// demoTokensFile holds the demo org's URL and admin tokens in the data dir.
const demoTokensFile = "demo-okta.json"

// startDemoOrg serves the Okta simulator's org of profile (empty: small;
// seed 1, Workforce limits) on a free loopback port and writes its URL and
// tokens to the data dir, so the demo has an Okta org to connect to.
func startDemoOrg(ctx context.Context, dataDir, profile string, timeScale float64) (*oktasim.Running, string, error) {
	if profile == "" {
		profile = "small"
	}
	sim, err := oktasim.Start(ctx, oktasim.Config{Profile: profile, Seed: 1, Addr: "127.0.0.1:0", TimeScale: timeScale})
	if err != nil {
		return nil, "", fmt.Errorf("start the demo Okta org: %w", err)
	}
	out := struct {
		URL string `json:"url"`
		oktasim.Tokens
	}{sim.URL, sim.Tokens}
	b, err := json.MarshalIndent(out, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dataDir, demoTokensFile), append(b, '\n'), 0o600)
	}
	if err != nil {
		_ = sim.Close(ctx)
		return nil, "", fmt.Errorf("write the demo org's tokens: %w", err)
	}
	return sim, fmt.Sprintf("demo Okta org (simulator, %s profile): %s  tokens in %s", profile, sim.URL, filepath.Join(dataDir, demoTokensFile)), nil
}

// devServices builds each service's configuration from the environment (so
// their own variables still apply) for the one-process run; tuneSync, when
// not nil, adjusts the sync's.
func devServices(ctx context.Context, key secrets.Key, timeScale float64, tuneSync func(*syncsvc.Config), mailAddr string,
	adminKey func(context.Context, catalog.BootstrapAdmin) error) ([]service.Service, error) {
	syncCfg, err := syncsvc.ConfigFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	if tuneSync != nil {
		tuneSync(&syncCfg)
	}
	if timeScale > 1 {
		syncCfg.OktaTimeScale = timeScale
	}
	if syncCfg.SecretsKey.IsZero() {
		syncCfg.SecretsKey = key
	}
	provCfg, err := provisioning.ConfigFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	if timeScale > 1 {
		provCfg.OktaTimeScale = timeScale
	}
	if provCfg.SecretsKey.IsZero() {
		provCfg.SecretsKey = key
	}
	catCfg, err := catalog.ConfigFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	if catCfg.SecretsKey.IsZero() {
		catCfg.SecretsKey = key
	}
	if catCfg.OnBootstrapKey == nil && catCfg.AdminKeyFile == "" {
		catCfg.OnBootstrapKey = adminKey
	}
	notCfg, err := notifier.ConfigFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	if notCfg.SMTPAddr == "" {
		// Without an SMTP server of its own, dev's notifier mails the
		// embedded capture server (accessbus mail list|show).
		notCfg.SMTPAddr, notCfg.SMTPTLS = mailAddr, "none"
		notCfg.SMTPUsername, notCfg.SMTPPassword = "", notifier.Password{}
	}
	if notCfg.MailFrom == "" {
		notCfg.MailFrom = "accessbus <accessbus@localhost>"
	}
	return []service.Service{
		syncsvc.Service(syncCfg),
		provisioning.Service(provCfg),
		catalog.Service(catCfg),
		notifier.Service(notCfg),
	}, nil
}

func announceWhenReady(ctx context.Context, h *service.Health, announce func()) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if len(h.Problems(ctx)) == 0 {
				announce()
				return
			}
		}
	}
}

// startEmbeddedNATS starts a JetStream server storing under dir, listening on
// a random loopback port so that CLI commands (events tail) can reach it.
func startEmbeddedNATS(dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "accessbus-dev",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		// A group's members are one state value of about 23 bytes per member:
		// NATS's default 1 MiB limit would stop a sync at about 45,000 members.
		MaxPayload: maxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not become ready within 30s")
	}
	return ns, nil
}

// maxPayload is the embedded server's largest message (NATS allows up to
// 64 MiB; it recommends at most 8 MiB).
const maxPayload = 8 << 20

// lockDataDir makes sure one accessbus dev uses a data dir at a time: two
// embedded servers on one JetStream store would corrupt it.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another accessbus dev; stop it or pass another --data-dir", dir)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
