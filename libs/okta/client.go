// Package okta is the only way accessbus talks to Okta. It wraps
// okta-sdk-golang/v2 with every option set explicitly (so ~/.okta/okta.yaml,
// .okta.yaml and OKTA_CLIENT_* cannot change a run), its cache off and its
// retries off; under it a transport counts every request against the org's
// rate budget, retries 429s and transient failures, and turns every error
// answer into an *APIError that unwraps to a sentinel of errors.go. Lists
// page to the end at each endpoint's maximum page size and hand each page to
// a callback; they return this package's own types, so callers never depend
// on the SDK.
package okta

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"
	oktasdk "github.com/okta/okta-sdk-golang/v2/okta"
)

// Config configures a Client.
type Config struct {
	// OrgURL is the org, such as https://acme.okta.com; a bare host gets
	// https://. Plain http is accepted only for loopback hosts (the simulator).
	OrgURL string
	// Token is the SSWS API token.
	Token telemetry.Secret
	// Budget paces every request; required.
	Budget *ratelimit.Budget
	// OrgKey is the org's key in Budget; default the URL's host (with port).
	OrgKey string
	// HTTPClient supplies the base transport; default a tuned one. Its
	// Timeout is not used: RequestTimeout bounds each attempt.
	HTTPClient *http.Client
	// RequestTimeout bounds one attempt, response body included; default 30 s.
	RequestTimeout time.Duration
	// MaxRetries is how many times a 429 or transient failure is retried;
	// default 4, negative for none.
	MaxRetries int
	// RetryBackoff is the first wait before retrying a transient failure,
	// doubled per retry with jitter; default 500 ms.
	RetryBackoff time.Duration
}

// Client calls one Okta org. It is safe for concurrent use.
type Client struct {
	orgURL string
	sdk    *oktasdk.Client
}

const (
	defaultRequestTimeout = 30 * time.Second
	defaultMaxRetries     = 4
	defaultRetryBackoff   = 500 * time.Millisecond
)

// New validates cfg and returns a Client. It makes no request.
func New(ctx context.Context, cfg Config) (*Client, error) {
	orgURL, loopbackHTTP, err := normalizeOrgURL(cfg.OrgURL)
	if err != nil {
		return nil, fmt.Errorf("new okta client: %w", err)
	}
	if !cfg.Token.IsSet() {
		return nil, fmt.Errorf("new okta client for %s: no API token: %w", orgURL, ErrInvalidConfig)
	}
	if cfg.Budget == nil {
		return nil, fmt.Errorf("new okta client for %s: no rate budget: %w", orgURL, ErrInvalidConfig)
	}
	if cfg.OrgKey == "" {
		u, _ := url.Parse(orgURL) // normalizeOrgURL parsed it already
		cfg.OrgKey = u.Host
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = defaultMaxRetries
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = defaultRetryBackoff
	}
	if cfg.RequestTimeout < 0 || cfg.RetryBackoff < 0 {
		return nil, fmt.Errorf("new okta client for %s: negative timeout or backoff: %w", orgURL, ErrInvalidConfig)
	}
	base := http.RoundTripper(defaultTransport())
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		base = cfg.HTTPClient.Transport
	}
	hc := &http.Client{
		Transport: &transport{
			base: base, budget: cfg.Budget, org: cfg.OrgKey,
			maxRetries: max(cfg.MaxRetries, 0), timeout: cfg.RequestTimeout, backoff: cfg.RetryBackoff,
		},
		// Okta's API does not redirect; following one could carry the
		// token somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// Every setting the SDK reads from files or the environment is set
	// here, so neither can change a run.
	_, sdk, err := oktasdk.NewClient(ctx,
		oktasdk.WithOrgUrl(orgURL),
		oktasdk.WithToken(cfg.Token.Reveal()),
		oktasdk.WithAuthorizationMode("SSWS"),
		oktasdk.WithClientId(""),
		oktasdk.WithScopes(nil),
		oktasdk.WithPrivateKey(""),
		oktasdk.WithPrivateKeyId(""),
		oktasdk.WithClientAssertion(""),
		oktasdk.WithCache(false),
		oktasdk.WithCacheTtl(0),
		oktasdk.WithCacheTti(0),
		oktasdk.WithProxyHost(""),
		oktasdk.WithProxyPort(0),
		oktasdk.WithProxyUsername(""),
		oktasdk.WithProxyPassword(""),
		oktasdk.WithConnectionTimeout(int64(cfg.RequestTimeout/time.Second)),
		// 0: the transport bounds each attempt; the SDK's timeout would
		// bound all retries and budget waits together.
		oktasdk.WithRequestTimeout(0),
		// The transport owns retries: the SDK's would bypass the budget.
		oktasdk.WithRateLimitMaxRetries(0),
		oktasdk.WithRateLimitMaxBackOff(1),
		oktasdk.WithUserAgentExtra("accessbus"),
		oktasdk.WithHttpClientPtr(hc),
		oktasdk.WithTestingDisableHttpsCheck(loopbackHTTP),
	)
	if err != nil {
		// The SDK's validation messages name the URL, never the token.
		return nil, fmt.Errorf("new okta client for %s: %w: %w", orgURL, ErrInvalidConfig, err)
	}
	return &Client{orgURL: orgURL, sdk: sdk}, nil
}

// OrgURL is the normalized org URL the client calls.
func (c *Client) OrgURL() string { return c.orgURL }

// String names the org only, never the token.
func (c *Client) String() string { return "okta.Client{" + c.orgURL + "}" }

// GoString names the org only, never the token.
func (c *Client) GoString() string { return c.String() }

// normalizeOrgURL returns scheme://host[:port], and whether it is plain
// http to a loopback host.
func normalizeOrgURL(raw string) (string, bool, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", false, fmt.Errorf("no org URL: %w", ErrInvalidConfig)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("org URL %q: %w: %w", raw, ErrInvalidConfig, err)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("org URL %q: want scheme://host[:port] only: %w", raw, ErrInvalidConfig)
	}
	loopback := IsLoopbackHost(u.Hostname())
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback:
	default:
		return "", false, fmt.Errorf("org URL %q: must be https (http only for loopback hosts): %w", raw, ErrInvalidConfig)
	}
	return u.Scheme + "://" + u.Host, u.Scheme == "http", nil
}

// IsLoopbackHost reports whether host is this machine (localhost or a
// loopback IP): the only hosts Okta-facing URLs may reach over plain http
// (the simulator, tests).
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultTransport is tuned for one org: enough idle connections for
// Okta's concurrency limit of 75.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   ratelimit.DefaultConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// fail wraps err with the operation, keeping the *APIError and dropping the
// url.Error around the transport's errors.
func fail(ctx context.Context, op string, err error) error {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %w", op, apiErr)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", op, err)
}
