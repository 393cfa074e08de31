package connectors

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// OrgURL returns the base URL of an Okta org, "https://host", from a
// connector's okta_domain.
//
// It accepts a bare host ("acme.okta.com", "acme.oktapreview.com", a custom
// domain such as "login.acme.com") or the same with "https://", with an
// optional port and trailing "/". It refuses a path, query, fragment or
// user info, an admin host ("acme-admin.okta.com"), spaces, and http://,
// except http:// to a loopback host with a port (127.0.0.1, localhost,
// [::1]), which the Okta simulator and tests use; that URL is returned as
// "http://host:port". Every refusal wraps ErrInvalidDomain and says what to
// fix; an empty domain (a connector whose owner has not set it yet) also
// wraps ErrNoDomain.
func OrgURL(domain string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidDomain, domain, fmt.Sprintf(format, args...))
	}
	if domain == "" {
		return "", errNoDomain{}
	}
	if strings.ContainsAny(domain, " \t\r\n") {
		return bad("it has spaces: remove them, for example acme.okta.com")
	}
	raw := domain
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		scheme, rest = "https", raw
	}
	scheme = strings.ToLower(scheme)
	if scheme != "https" && scheme != "http" {
		return bad("scheme %s: use the bare domain, such as acme.okta.com, or https://", scheme)
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil {
		return bad("not a domain: %v", err)
	}
	if u.User != nil {
		return bad("it has user info before the host: remove it, keep only the host such as acme.okta.com")
	}
	if u.Path != "" && u.Path != "/" {
		return bad("it has a path (%s): keep only the host, such as acme.okta.com", u.Path)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(rest, "?#") {
		return bad("it has a query or fragment: keep only the host, such as acme.okta.com")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return bad("the host is missing: set the org's domain, such as acme.okta.com")
	}
	port := u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return bad("the port is empty: remove the ':' or give a port")
	}
	if scheme == "http" {
		if !isLoopback(host) || port == "" {
			return bad("http:// is refused, Okta is served over https: use https:// or the bare domain, such as acme.okta.com (http:// is allowed only to a loopback host with a port, for the Okta simulator)")
		}
		return "http://" + net.JoinHostPort(host, port), nil
	}
	if label, _, _ := strings.Cut(host, "."); strings.HasSuffix(label, "-admin") {
		return bad("this is the org's admin console host: use the org's domain without -admin, such as %s",
			strings.TrimSuffix(label, "-admin")+strings.TrimPrefix(host, label))
	}
	if err := checkHostname(host); err != nil {
		return bad("%v", err)
	}
	if port != "" {
		return "https://" + net.JoinHostPort(host, port), nil
	}
	return "https://" + host, nil
}

// OrgURLFor is OrgURL for connector id: a refusal of an empty domain names
// the connector in the command that sets it.
func OrgURLFor(id, domain string) (string, error) {
	u, err := OrgURL(domain)
	if err != nil && errors.Is(err, ErrNoDomain) && id != "" {
		return "", errNoDomain{connector: id}
	}
	return u, err
}

// errNoDomain is OrgURL's refusal of an empty domain: the connector was
// added without one, and an owner has not set it yet.
type errNoDomain struct{ connector string }

func (e errNoDomain) Error() string {
	id := e.connector
	if id == "" {
		id = "<connector>"
	}
	return ErrNoDomain.Error() + ": an owner sets it with `accessbus connectors set-settings " + id + " --domain acme.okta.com`"
}

func (errNoDomain) Is(target error) bool { return target == ErrNoDomain || target == ErrInvalidDomain }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHostname accepts DNS names (and IP literals, for private test orgs).
func checkHostname(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("the host is longer than 253 characters")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("the host has an empty or over-long label: use a domain such as acme.okta.com")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("the host has %q: use letters, digits, '-' and '.', such as acme.okta.com", r)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("a label of the host starts or ends with '-': use a domain such as acme.okta.com")
		}
	}
	return nil
}

// normalizeDomain is the okta_domain stored for domain: the host (and port)
// for an https org, the full URL for a loopback http one.
func normalizeDomain(domain string) (string, error) {
	u, err := OrgURL(domain)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(u, "https://"), nil
}
