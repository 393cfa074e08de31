package oktasim

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are failures the simulator injects on demand; all are off by default.
type Faults struct {
	// ErrorRate is the fraction of API requests answered 500 (0..1).
	ErrorRate float64
	// Latency is added to every API request (real time).
	Latency time.Duration
	// CutRate is the fraction of API responses whose connection is cut in
	// the middle of the body (0..1).
	CutRate float64
	// MembershipLag delays group membership changes on reads by this much
	// simulated time, as Okta's eventual consistency does.
	MembershipLag time.Duration
	// Seed makes the injected faults repeatable.
	Seed uint64
}

// Options configure a Server.
type Options struct {
	RateLimits RateLimits
	Faults     Faults
	// AdminKey guards the simulator's own /_sim/ endpoints (header
	// X-Sim-Admin-Key); empty disables them.
	AdminKey string
	// HookClient delivers event hooks; nil uses a client with Okta's 3 s timeout.
	HookClient *http.Client
}

// Server serves an Org over HTTP as Okta does.
type Server struct {
	org    *Org
	lim    *limiter
	opts   Options
	mux    *http.ServeMux
	reqSeq atomic.Uint64

	faultMu sync.Mutex
	rng     *rand.Rand

	hooks *hookDispatcher
}

// NewServer returns a handler serving org with opts.
func NewServer(org *Org, opts Options) *Server {
	s := &Server{
		org:  org,
		lim:  newLimiter(opts.RateLimits, org.clock),
		opts: opts,
		mux:  http.NewServeMux(),
		rng:  newFaultRand(opts.Faults.Seed),
	}
	s.hooks = newHookDispatcher(org, opts.HookClient)
	s.routes()
	return s
}

// Org is the org the server serves.
func (s *Server) Org() *Org { return s.org }

// Counts returns the requests received per bucket.
func (s *Server) Counts() Counts { return s.lim.snapshot() }

// Close stops hook deliveries.
func (s *Server) Close() { s.hooks.close() }

// ctxKey keys the caller in a request's context.
type ctxKey struct{}

// caller is the admin user behind a request's token, with its permissions.
type caller struct {
	user  *User
	perms perms
}

func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(ctxKey{}).(*caller)
	return c
}

// ServeHTTP answers a request: request id and date, authentication, rate
// limit, faults, then the endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Okta-Request-Id", fmt.Sprintf("sim%013d", s.reqSeq.Add(1)))
	h.Set("Date", s.org.clock.Now().UTC().Format(http.TimeFormat))
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
		notFound(w, r.URL.Path)
		return
	}
	// Okta counts every API call, a refused one too, and every answer
	// carries the bucket's rate-limit headers.
	bucket := BucketOf(r.Method, r.URL.Path)
	admitted, _ := s.lim.admit(h, bucket)
	if !admitted {
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "API call exceeded rate limit due to too many requests.")
		return
	}
	defer s.lim.release(bucket)
	c, ok := s.authenticate(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, codeInvalidToken, "Invalid token provided")
		return
	}
	if s.injectFaults(w) {
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, c))
	if s.shouldCut() {
		s.serveCut(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authenticate reads "Authorization: SSWS <token>".
func (s *Server) authenticate(r *http.Request) (*caller, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "SSWS ")
	if !ok || tok == "" {
		return nil, false
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	uid, ok := s.org.tokens[tok]
	if !ok {
		return nil, false
	}
	u, ok := s.org.users.get(uid)
	if !ok || u.Status != "ACTIVE" {
		return nil, false
	}
	return &caller{user: u, perms: s.org.permsOf(u)}, true
}

func (s *Server) injectFaults(w http.ResponseWriter) bool {
	f := s.opts.Faults
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	if f.ErrorRate > 0 && s.chance(f.ErrorRate) {
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error")
		return true
	}
	return false
}

// newFaultRand is the random source of injected faults: repeatable per seed.
func newFaultRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func (s *Server) shouldCut() bool {
	return s.opts.Faults.CutRate > 0 && s.chance(s.opts.Faults.CutRate)
}

func (s *Server) chance(p float64) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.rng.Float64() < p
}

// serveCut runs the endpoint into a buffer, then sends the headers and half
// of the body and cuts the connection.
func (s *Server) serveCut(w http.ResponseWriter, r *http.Request) {
	buf := &bufferedWriter{header: w.Header(), code: http.StatusOK}
	s.mux.ServeHTTP(buf, r)
	w.Header().Set("Content-Length", strconv.Itoa(len(buf.body)))
	w.WriteHeader(buf.code)
	_, _ = w.Write(buf.body[:len(buf.body)/2])
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.(net.Conn).Close()
		}
	}
}

type bufferedWriter struct {
	header http.Header
	code   int
	body   []byte
}

func (b *bufferedWriter) Header() http.Header  { return b.header }
func (b *bufferedWriter) WriteHeader(code int) { b.code = code }
func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.body = append(b.body, p...)
	return len(p), nil
}

// handle registers the methods of one path; other methods get Okta's 405.
func (s *Server) handle(pattern string, byMethod map[string]http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if h, ok := byMethod[r.Method]; ok {
			h(w, r)
			return
		}
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowd, "The endpoint does not support the provided HTTP method")
	})
}

// routes registers every endpoint; each area registers its own paths.
func (s *Server) routes() {
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w, r.URL.Path) })
	s.routesUsers()
	s.routesGroups()
	s.routesApps()
	s.routesRoles()
	s.routesIAM()
	s.routesLogs()
	s.routesHooks()
	s.routesOrg()
}

// writeJSON answers 200 (or code) with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeRaw answers with pre-rendered JSON.
func writeRaw(w http.ResponseWriter, code int, raw []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(raw)
}

// decodeBody reads a JSON request body into v, answering 400 E0000003 for
// a body that is not JSON.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		malformed(w, err)
		return false
	}
	return true
}

// pageParams are a list request's limit and cursor.
type pageParams struct {
	limit int
	after uint64
}

// parsePage reads limit (clamped to max, not refused, as Okta does) and the
// opaque after cursor.
func parsePage(w http.ResponseWriter, r *http.Request, def, max int) (pageParams, bool) {
	p := pageParams{limit: def}
	q := r.URL.Query()
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			invalid(w, "limit: must be a positive number")
			return p, false
		}
		p.limit = min(n, max)
	}
	if a := q.Get("after"); a != "" {
		seq, err := decodeCursor(a)
		if err != nil {
			invalid(w, "after: invalid cursor")
			return p, false
		}
		p.after = seq
	}
	return p, true
}

func encodeCursor(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c" + strconv.FormatUint(seq, 36)))
}

func decodeCursor(s string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != 'c' {
		return 0, fmt.Errorf("bad cursor")
	}
	return strconv.ParseUint(string(b[1:]), 36, 64)
}

// setLinks adds Okta's Link headers, each on its own line: self, and next
// when more follows (the SDK v2 splits one header on ';' only).
func (s *Server) setLinks(w http.ResponseWriter, r *http.Request, last uint64, more bool) {
	self := s.org.base + r.URL.Path
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	w.Header().Add("Link", "<"+self+">; rel=\"self\"")
	if more {
		q := r.URL.Query()
		q.Set("after", encodeCursor(last))
		w.Header().Add("Link", "<"+s.org.base+r.URL.Path+"?"+q.Encode()+">; rel=\"next\"")
	}
}

// writeArray answers with a JSON array of pre-rendered items, written piece
// by piece: a page of 1,000 members is about a megabyte, and copying it into
// one buffer per page made the garbage collector the simulator's bottleneck.
// Cached renders are never modified in place, so they are safe to write
// after the org's lock is released.
func writeArray(w http.ResponseWriter, items [][]byte) {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	if len(items) > 0 {
		n--
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	// Gather the pieces in a large pooled buffer: net/http's own 4 KiB
	// buffer would make a megabyte page cost hundreds of write calls.
	bw := pageWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	_, _ = bw.Write(openBracket)
	for i, it := range items {
		if i > 0 {
			_, _ = bw.Write(comma)
		}
		_, _ = bw.Write(it)
	}
	_, _ = bw.Write(closeBracket)
	_ = bw.Flush()
	bw.Reset(nil)
	pageWriters.Put(bw)
}

var pageWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

var (
	openBracket  = []byte("[")
	comma        = []byte(",")
	closeBracket = []byte("]")
)

// href is an absolute link into the org.
func (o *Org) href(path string) string { return o.base + path }
