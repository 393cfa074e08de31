package catalog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// Bounds of the credential check, so that a settings call answers in
// reasonable time even when the domain does not.
const (
	checkTimeout        = 45 * time.Second
	checkRequestTimeout = 15 * time.Second
	lookupTimeout       = 10 * time.Second
	defaultCheckShare   = 0.5
)

// credentialFailure is why a credential check refused a domain and token.
type credentialFailure struct {
	// code is the API error's code.
	code connect.Code
	// reason says what happened and what to do, for a person; it becomes
	// the connector's status_reason when setError.
	reason string
	// setError is true when the failure says something about the
	// credentials (the connector's status becomes ERROR), false when Okta
	// could not be asked (try again later).
	setError bool
}

// checkCredentials asks Okta, at domain with token, what the token may do
// (okta.Client.ProbeCapabilities: reads and permission probes that change
// nothing). A nil failure means the token works and reads what a sync
// needs.
func (a *API) checkCredentials(ctx context.Context, domain string, token telemetry.Secret, share float64) (*eventsv1.Capabilities, *credentialFailure) {
	fail := func(code connect.Code, setError bool, format string, args ...any) (*eventsv1.Capabilities, *credentialFailure) {
		reason := telemetry.RedactString(fmt.Sprintf(format, args...), token.Reveal())
		return nil, &credentialFailure{code: code, reason: reason, setError: setError}
	}
	orgURL, err := connectors.OrgURL(domain)
	if err != nil {
		return fail(connect.CodeInvalidArgument, true, "the Okta domain cannot be used: %v", err)
	}
	u, _ := url.Parse(orgURL) // OrgURL made it
	host := u.Hostname()
	if net.ParseIP(host) == nil {
		lookup := a.d.LookupHost
		if lookup == nil {
			lookup = net.DefaultResolver.LookupHost
		}
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		_, err := lookup(lctx, host)
		cancel()
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return fail(connect.CodeInvalidArgument, true,
				"the Okta domain %s does not exist (no DNS record): check the connector's domain, such as acme.okta.com", host)
		}
		// Other lookup failures show up below as Okta being unreachable.
	}

	if share <= 0 || share > 1 {
		share = defaultCheckShare
	}
	budget, err := ratelimit.New(a.d.RateStore, ratelimit.Options{Share: share, Logger: a.log})
	if err != nil {
		return fail(connect.CodeInternal, false, "the rate budget of the credential check: %v", err)
	}
	client, err := okta.New(ctx, okta.Config{
		OrgURL: orgURL, Token: token, Budget: budget, HTTPClient: a.d.OktaHTTPClient,
		RequestTimeout: checkRequestTimeout, MaxRetries: 1,
	})
	if err != nil {
		return fail(connect.CodeInvalidArgument, true, "the Okta domain %s cannot be used: %v", orgURL, err)
	}
	pctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	caps, err := client.ProbeCapabilities(pctx)
	if err != nil {
		code := ""
		var apiErr *okta.APIError
		if errors.As(err, &apiErr) && apiErr.Code != "" {
			code = " (" + apiErr.Code + ")"
		}
		switch {
		case errors.Is(err, okta.ErrInvalidCredentials):
			return fail(connect.CodeInvalidArgument, true,
				"Okta at %s rejected the API token%s: it is wrong, revoked or expired; create a new token in the Okta Admin Console (Security > API > Tokens) and set it again", orgURL, code)
		case errors.Is(err, okta.ErrPermissionDenied):
			return fail(connect.CodeFailedPrecondition, true,
				"the API token may not read what the connector needs at %s%s: give the token's administrator at least the Read-Only Administrator role, then set the token again", orgURL, code)
		case isCertificateError(err):
			return fail(connect.CodeInvalidArgument, true,
				"%s does not have a valid TLS certificate (%v): check the connector's domain", orgURL, rootCause(err))
		case ctx.Err() != nil:
			return fail(connect.CodeCanceled, false, "the credential check was cancelled: %v", ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return fail(connect.CodeUnavailable, false,
				"Okta at %s did not answer the credential check within %s: check the domain and try again", orgURL, checkTimeout)
		case errors.Is(err, okta.ErrRateLimited):
			return fail(connect.CodeUnavailable, false,
				"Okta at %s is rate limiting%s: try again in a minute", orgURL, code)
		case errors.Is(err, okta.ErrTransient):
			return fail(connect.CodeUnavailable, false,
				"Okta at %s could not be reached or answered with a server error (%v): check the domain and try again", orgURL, rootCause(err))
		default:
			// A 404 on /api/v1/users/me, an answer that is not Okta's JSON:
			// whatever serves this domain is not an Okta org.
			return fail(connect.CodeInvalidArgument, true,
				"%s does not answer as an Okta org (%v): check the connector's domain, such as acme.okta.com", orgURL, rootCause(err))
		}
	}
	if !caps.ReviewGroupMembership && !caps.ReviewAppAssignment {
		return fail(connect.CodeFailedPrecondition, true,
			"the API token of %s may not read users, groups and apps at %s: give the token's administrator at least the Read-Only Administrator role, then set the token again", caps.Login, orgURL)
	}
	return &eventsv1.Capabilities{
		ReviewGroupMembership:    caps.ReviewGroupMembership,
		ProvisionGroupMembership: caps.ProvisionGroupMembership,
		ReviewAppAssignment:      caps.ReviewAppAssignment,
		ProvisionAppAssignment:   caps.ProvisionAppAssignment,
		ReviewRoles:              caps.ReviewRoles,
		AdminRoleTypes:           caps.RoleTypes,
		ProbedAt:                 timestamppb.Now(),
	}, nil
}

// isCertificateError says whether err is a TLS certificate the client does
// not trust: a domain problem, not an outage.
func isCertificateError(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// rootCause is the innermost error of a chain of single wraps, which says
// what went wrong without the path that led there; an *okta.APIError
// stops the descent (its Error says Okta's answer).
func rootCause(err error) string {
	for {
		if e, ok := err.(*okta.APIError); ok {
			return e.Error()
		}
		next := errors.Unwrap(err)
		if next == nil {
			return strings.TrimSpace(err.Error())
		}
		err = next
	}
}
