package okta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/accessbus/accessbus/libs/ratelimit"
)

// maxBody bounds a buffered response: the largest Okta page (1000 group
// members, 500 app users with profiles) is a few megabytes.
const maxBody = 64 << 20

// transport is the RoundTripper under the SDK: every request takes a permit
// of the org's rate budget, each attempt has its own timeout, and 429s and
// transient failures are retried here (the SDK's own retries are off). It
// logs nothing, so the Authorization header cannot leak through it.
//
// Error answers are returned as *APIError errors rather than responses:
// the SDK drops a 429 response when its retries are off, and one place
// reading Okta's error object keeps the classification uniform.
type transport struct {
	base       http.RoundTripper
	budget     *ratelimit.Budget
	org        string
	maxRetries int
	timeout    time.Duration
	backoff    time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	what := req.Method + " " + req.URL.Path
	bucket := ratelimit.BucketOf(req.Method, req.URL.Path)
	getBody, err := rewindable(req)
	if err != nil {
		return nil, fmt.Errorf("%s: read request body: %w", what, err)
	}
	for attempt := 0; ; attempt++ {
		resp, body, err := t.once(ctx, req, getBody, bucket)
		last := attempt >= t.maxRetries
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("%s: %w", what, ctx.Err())
		case errors.Is(err, errBudget):
			return nil, fmt.Errorf("%s: %w", what, err)
		case err != nil:
			if last {
				return nil, fmt.Errorf("%s after %d attempts: %w: %w", what, attempt+1, ErrTransient, err)
			}
			if err := sleep(ctx, t.delay(attempt)); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			continue
		case resp.StatusCode == http.StatusTooManyRequests:
			if last {
				return nil, apiError(resp, body)
			}
			// No sleep: Done paused the bucket until the reset, and the
			// next Acquire waits for it on the org's clock.
			continue
		case isTransientStatus(resp.StatusCode):
			if last {
				return nil, apiError(resp, body)
			}
			if err := sleep(ctx, t.delay(attempt)); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			continue
		case resp.StatusCode >= 400:
			return nil, apiError(resp, body)
		}
		if rb, ok := ctx.Value(rawBodyKey{}).(*rawBody); ok {
			// The caller decodes the page itself (linkPaged); the SDK,
			// which still builds the request and follows the Link header,
			// decodes an empty array.
			rb.body = body
			resp.Body = io.NopCloser(strings.NewReader("[]"))
			resp.ContentLength = 2
		}
		return resp, nil
	}
}

// rawBodyKey is the context key of a *rawBody.
type rawBodyKey struct{}

// rawBody receives the body of the successful answer to a request whose
// context holds it.
type rawBody struct {
	body []byte
}

// errBudget marks a failure of the rate budget itself, not of Okta.
var errBudget = errors.New("rate budget")

// once sends one attempt and buffers its body, so that a connection cut
// mid-body is a retryable failure and the attempt timeout covers the read.
func (t *transport) once(ctx context.Context, req *http.Request, getBody func() (io.ReadCloser, error), bucket string) (*http.Response, []byte, error) {
	permit, err := t.budget.Acquire(ctx, t.org, bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBudget, err)
	}
	actx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	r := req.Clone(actx)
	if getBody != nil {
		if r.Body, err = getBody(); err != nil {
			permit.Done(nil, 0)
			return nil, nil, fmt.Errorf("rewind request body: %w", err)
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		permit.Done(nil, 0)
		return nil, nil, err
	}
	body, err := readBody(resp)
	_ = resp.Body.Close()
	permit.Done(resp.Header, resp.StatusCode)
	if err != nil {
		return nil, nil, fmt.Errorf("read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Request = req
	return resp, body, nil
}

// readBody reads a response body of at most maxBody bytes, into one buffer
// of the announced length when there is one: io.ReadAll would grow its
// buffer step by step, which for a sync's pages of members and users
// doubled what the read allocates. The buffer comes from bodyPools; a
// caller done with the body gives it back with releaseBody.
func readBody(resp *http.Response) ([]byte, error) {
	r := io.LimitReader(resp.Body, maxBody)
	n := resp.ContentLength
	if n < 0 || n >= maxBody {
		// Unknown length (a compressed or chunked answer): a pooled
		// buffer of the smallest class, grown as needed.
		n = minPooledBody - bytes.MinRead
	}
	buf := bytes.NewBuffer(bodyBuffer(int(n) + bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// Page buffers are pooled by capacity class: class k holds buffers of
// minPooledBody<<k bytes, so that a buffer taken from a class always fits
// (a single pool handed out buffers too small for most pages: a sync's
// pages range from a few hundred bytes to a megabyte). A sync reads
// thousands of pages; allocating each anew was a tenth of what it
// allocates.
const (
	minPooledBody = 16 << 10
	bodyClasses   = 10 // up to minPooledBody<<9 = 8 MiB
)

var bodyPools [bodyClasses]sync.Pool

// bodyClass is the smallest class whose buffers hold n bytes, or
// bodyClasses when none does.
func bodyClass(n int) int {
	k := 0
	for k < bodyClasses && minPooledBody<<k < n {
		k++
	}
	return k
}

// bodyBuffer returns an empty buffer of capacity at least n: a small one
// of its own, or one of a class.
func bodyBuffer(n int) []byte {
	k := bodyClass(n)
	if k == bodyClasses || n < minPooledBody/2 {
		return make([]byte, 0, n)
	}
	if p, ok := bodyPools[k].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, minPooledBody<<k)
}

// releaseBody gives a body back to the pool of its capacity. Nothing may
// refer to it afterwards: the decoders copy what they keep.
func releaseBody(b []byte) {
	c := cap(b)
	if c < minPooledBody {
		return
	}
	k := bodyClass(c)
	if k == bodyClasses {
		return // larger than any class: not kept
	}
	if minPooledBody<<k > c {
		k-- // between two classes (grown by bytes.Buffer): the smaller
	}
	b = b[:0]
	bodyPools[k].Put(&b)
}

// rewindable returns a way to get a fresh copy of the request body for each
// attempt, or nil when there is no body.
func rewindable(req *http.Request) (func() (io.ReadCloser, error), error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		return req.GetBody, nil
	}
	b, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, nil
}

func isTransientStatus(s int) bool {
	return s == http.StatusInternalServerError || s == http.StatusBadGateway ||
		s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// delay is the wait before retry attempt+1: exponential with jitter, capped.
func (t *transport) delay(attempt int) time.Duration {
	d := min(t.backoff<<min(attempt, 16), 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// errorBody is Okta's error object.
type errorBody struct {
	ErrorCode    string `json:"errorCode"`
	ErrorSummary string `json:"errorSummary"`
	ErrorCauses  []struct {
		ErrorSummary string `json:"errorSummary"`
	} `json:"errorCauses"`
}

func apiError(resp *http.Response, body []byte) *APIError {
	var eb errorBody
	_ = json.Unmarshal(body, &eb) // a body that is not Okta's error object leaves the status to classify
	var causes []string
	for _, c := range eb.ErrorCauses {
		causes = append(causes, c.ErrorSummary)
	}
	return newAPIError(resp.StatusCode, eb.ErrorCode, eb.ErrorSummary, causes, resp.Header.Get("X-Okta-Request-Id"))
}
