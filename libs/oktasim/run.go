package oktasim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultStart is the simulated time a served org starts at when
// Config.Start is zero: 2026-11-01T09:00:00Z, a fixed date so that two runs
// with one seed show the same dates. Generated history lies in the three
// years before it.
func DefaultStart() time.Time { return time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC) }

// Config says what org Start serves and how.
type Config struct {
	// Profile is the org's size for Generate: small (the default), medium
	// or large.
	Profile string
	// Seed makes the org (and, unless Faults.Seed is set, the faults).
	Seed uint64
	// Addr is the listen address; empty is 127.0.0.1:0 (a free port).
	Addr string
	// RateLimits are the org's limits. The zero value is Workforce, Okta's
	// default; NoLimits turns them off.
	RateLimits RateLimits
	// TimeScale makes the org's clock run that many times faster than real
	// time (0 or 1: real time).
	TimeScale float64
	// Faults are injected into API answers; none by default.
	Faults Faults
	// TLS serves HTTPS with a certificate for 127.0.0.1, ::1 and localhost
	// from a CA made for this run (Running.CACertPEM).
	TLS bool
	// AdminKey enables the /_sim/ endpoints; empty disables them.
	AdminKey string
	// Start is the org's simulated time when it starts; zero is DefaultStart.
	Start time.Time
	// HookClient delivers event hooks; nil uses Okta's 3 s timeout.
	HookClient *http.Client
}

// Running is a generated org being served.
type Running struct {
	// URL is the org URL, http(s)://host:port, as links and hrefs show it.
	URL string
	// Tokens are the API tokens of the org's three admin users.
	Tokens Tokens
	// Generated describes the org as Generate made it.
	Generated *Generated
	// Server answers the org's requests; Org is the org it serves.
	Server *Server
	Org    *Org
	// CACertPEM is the PEM certificate of the CA that signed the server's
	// certificate (TLS only): clients trust it to call URL.
	CACertPEM []byte

	hs        *http.Server
	done      chan struct{}
	serveErr  error
	closeOnce sync.Once
	closeErr  error
}

// Start generates an org and serves it on cfg.Addr until Close. It returns
// once the org answers requests; generating the large profile takes tens of
// seconds.
func Start(ctx context.Context, cfg Config) (*Running, error) {
	if cfg.Profile == "" {
		cfg.Profile = "small"
	}
	if _, err := profileOf(cfg.Profile); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.RateLimits.Name == "" && cfg.RateLimits.PerMinute == nil {
		cfg.RateLimits = Workforce
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 1
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart()
	}
	if cfg.Faults.Seed == 0 {
		cfg.Faults.Seed = cfg.Seed
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("oktasim: listen on %s: %w", cfg.Addr, err)
	}
	run, err := start(ctx, cfg, ln)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return run, nil
}

func start(ctx context.Context, cfg Config, ln net.Listener) (*Running, error) {
	host, port := urlHost(ln.Addr())
	scheme := "http"
	if cfg.TLS {
		scheme = "https"
	}
	base := scheme + "://" + net.JoinHostPort(host, port)
	org := NewOrg(base, NewClock(cfg.Start, cfg.TimeScale))
	gen, err := Generate(org, cfg.Profile, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("oktasim: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oktasim: start: %w", err)
	}
	srv := NewServer(org, Options{RateLimits: cfg.RateLimits, Faults: cfg.Faults, AdminKey: cfg.AdminKey, HookClient: cfg.HookClient})
	run := &Running{
		URL: base, Tokens: gen.Tokens, Generated: gen, Server: srv, Org: org,
		hs:   &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	if cfg.TLS {
		caPEM, cert, err := newServerCert(ln.Addr())
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("oktasim: make TLS certificate: %w", err)
		}
		run.CACertPEM = caPEM
		run.hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, run.hs.TLSConfig)
	}
	go func() {
		defer close(run.done)
		if err := run.hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			run.serveErr = err
		}
	}()
	return run, nil
}

// urlHost is the host and port of the org URL for a listen address: the
// address itself, or the loopback address when it listens on all
// interfaces.
func urlHost(a net.Addr) (host, port string) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		h, p, _ := net.SplitHostPort(a.String())
		return h, p
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return ip.String(), strconv.Itoa(ta.Port)
}

// Done is closed when the server stops serving: after Close, or on a
// failure Err tells.
func (r *Running) Done() <-chan struct{} { return r.done }

// Err is why the server stopped serving other than Close, once Done is closed.
func (r *Running) Err() error {
	select {
	case <-r.done:
		return r.serveErr
	default:
		return nil
	}
}

// Client returns an HTTP client that trusts the org's certificate (TLS) or
// a plain one.
func (r *Running) Client() *http.Client {
	if r.CACertPEM == nil {
		return &http.Client{Timeout: 30 * time.Second}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CACertPEM)
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

// Close stops serving, waiting until ctx ends for requests in flight, and
// stops event hook deliveries. It is safe to call more than once.
func (r *Running) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		err := r.hs.Shutdown(ctx)
		if err != nil {
			// Out of patience: cut what is left.
			err = errors.Join(err, r.hs.Close())
		}
		<-r.done
		r.Server.Close()
		if err != nil {
			r.closeErr = fmt.Errorf("oktasim: stop serving %s: %w", r.URL, err)
		}
	})
	return r.closeErr
}

// newServerCert makes a CA and a server certificate it signs, valid for a
// year of real time (TLS checks the wall clock, not the org's) for
// localhost, 127.0.0.1, ::1 and the listen address; it returns the CA's PEM.
func newServerCert(addr net.Addr) ([]byte, tls.Certificate, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "oktasim CA", Organization: []string{"accessbus oktasim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("server key: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP != nil && !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() {
		ips = append(ips, ta.IP)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"accessbus oktasim"}},
		DNSNames:     []string{"localhost"},
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), cert, nil
}

// serialNumber is a random 128-bit certificate serial number.
func serialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		// crypto/rand does not fail on supported platforms; a fixed serial
		// is still a valid certificate.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
