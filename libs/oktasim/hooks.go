package oktasim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Okta's event hook delivery timing (shared/okta/FACTS.md).
const (
	// hookTimeout is how long Okta waits for a receiver to answer.
	hookTimeout = 3 * time.Second
	// hookBatchWindow and hookBatchMax bound a batch: events close in
	// time share one delivery.
	hookBatchWindow = 100 * time.Millisecond
	hookBatchMax    = 50
)

// HookStats counts the event hook calls the simulator has made.
type HookStats struct {
	// Delivered counts deliveries answered with a 2xx.
	Delivered int
	// Events counts the events in delivered deliveries.
	Events int
	// Failed counts deliveries given up: a 4xx, or a second 5xx or timeout.
	Failed int
	// Retried counts second attempts after a 5xx, a timeout or a
	// connection failure.
	Retried int
}

// HookStats returns the counts of event hook deliveries so far.
func (s *Server) HookStats() HookStats {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.stats
}

// VerifyEventHook makes Okta's one-time verification call to a hook: a GET
// to its URI carrying x-okta-verification-challenge, which the receiver
// must echo as {"verification":"<value>"}. On success the hook becomes
// VERIFIED; otherwise the error wraps ErrInvalid and says why.
func (s *Server) VerifyEventHook(ctx context.Context, by *LogActor, id string) (*EventHook, error) {
	return s.hooks.verify(ctx, by, id)
}

// hookDispatcher delivers System Log events to the org's event hooks as
// Okta does: batched, at least once, one retry after a 5xx or a timeout,
// each hook on its own so that a slow receiver delays only itself.
type hookDispatcher struct {
	org    *Org
	client *http.Client
	window time.Duration
	max    int

	// ctx is canceled by close, which aborts calls in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// wake holds a token when events are queued and the batcher may not
	// have seen them.
	wake chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	// mu guards what follows. It is never held while taking org.mu (the
	// org calls enqueue with org.mu held).
	mu      sync.Mutex
	closed  bool
	queue   []queuedEvent
	perHook map[string]*hookQueue
	stats   HookStats
	seq     uint64
	timeout time.Duration
}

// hookQueue is the deliveries waiting for one hook, and whether a
// goroutine is working through them.
type hookQueue struct {
	pending []hookDelivery
	running bool
}

// hookDelivery is one POST to a hook: up to hookBatchMax events.
type hookDelivery struct {
	ch     hookChannel
	events []json.RawMessage
}

// newHookDispatcher starts delivering o's events to its hooks with c (nil:
// a client with Okta's 3 s timeout).
func newHookDispatcher(o *Org, c *http.Client) *hookDispatcher {
	if c == nil {
		c = &http.Client{Timeout: hookTimeout}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &hookDispatcher{
		org: o, client: c, timeout: hookTimeout, window: hookBatchWindow, max: hookBatchMax,
		ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), perHook: map[string]*hookQueue{},
	}
	o.mu.Lock()
	o.hookOut = d.enqueue
	o.mu.Unlock()
	d.wg.Add(1)
	go d.batch()
	return d
}

// close stops the deliveries, aborting those in flight, and waits for the
// dispatcher's goroutines to end. Events not yet delivered are dropped.
func (d *hookDispatcher) close() {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.queue = nil
		d.mu.Unlock()
		d.cancel()
		d.wg.Wait()
	})
}

// enqueue takes an event from emit, which holds org.mu: it must never
// block, so the queue is unbounded and the batcher is only signalled.
func (d *hookDispatcher) enqueue(ev *LogEvent) {
	if !hookEligible(ev.EventType) {
		return // no hook can subscribe to it
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	// Which hooks get the event is decided now, when it happens, not when
	// the batch goes out: a hook activated a moment later does not receive
	// it, one deactivated a moment later still does. The caller holds
	// org.mu, so the hooks can be read as they are.
	var to []string
	d.org.hooks.each(func(id string, h *EventHook) bool {
		if h.Status == HookActive && h.VerificationStatus == HookVerified && slices.Contains(h.Events, ev.EventType) {
			to = append(to, id)
		}
		return true
	})
	if len(to) == 0 {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, queuedEvent{ev: ev, hooks: to})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default: // a token is already waiting
	}
}

// batch waits for events, gives later ones a short window to join them
// (Okta batches events close in time), and routes them to the hooks.
func (d *hookDispatcher) batch() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.wake:
		}
		timer := time.NewTimer(d.window)
	collect:
		for d.queued() < d.max {
			select {
			case <-d.ctx.Done():
				timer.Stop()
				return
			case <-d.wake:
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		d.route(d.take())
	}
}

func (d *hookDispatcher) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queue)
}

// queuedEvent is an event with the hooks it is to be delivered to.
type queuedEvent struct {
	ev    *LogEvent
	hooks []string
}

func (d *hookDispatcher) take() []queuedEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queue
	d.queue = nil
	return q
}

// route hands each hook the events it subscribed to when they happened, in
// deliveries of at most d.max events, with the hook's current channel.
func (d *hookDispatcher) route(queued []queuedEvent) {
	if len(queued) == 0 {
		return
	}
	byHook := map[string][]json.RawMessage{}
	var order []string
	for _, q := range queued {
		for _, id := range q.hooks {
			if _, seen := byHook[id]; !seen {
				order = append(order, id)
			}
			byHook[id] = append(byHook[id], q.ev.raw)
		}
	}
	chans := make(map[string]hookChannel, len(order))
	d.org.mu.RLock()
	for _, id := range order {
		if h, ok := d.org.hooks.get(id); ok {
			chans[id] = hookChannelOf(h)
		}
	}
	d.org.mu.RUnlock()
	for _, id := range order {
		ch, ok := chans[id]
		if !ok {
			continue // deleted since: nowhere to deliver
		}
		matched := byHook[id]
		for len(matched) > 0 {
			n := min(len(matched), d.max)
			d.schedule(hookDelivery{ch: ch, events: matched[:n:n]})
			matched = matched[n:]
		}
	}
}

// schedule queues a delivery for its hook and starts the hook's worker if
// it is idle.
func (d *hookDispatcher) schedule(dl hookDelivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	q := d.perHook[dl.ch.id]
	if q == nil {
		q = &hookQueue{}
		d.perHook[dl.ch.id] = q
	}
	q.pending = append(q.pending, dl)
	if !q.running {
		q.running = true
		d.wg.Add(1)
		go d.work(dl.ch.id)
	}
}

// work delivers one hook's deliveries in order until none are left.
func (d *hookDispatcher) work(hookID string) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		q := d.perHook[hookID]
		if d.closed || len(q.pending) == 0 {
			q.running = false
			delete(d.perHook, hookID)
			d.mu.Unlock()
			return
		}
		dl := q.pending[0]
		q.pending = q.pending[1:]
		d.mu.Unlock()
		d.deliver(dl)
	}
}

// hookPayload is the body of a delivery (Okta's event hook request).
type hookPayload struct {
	EventType          string   `json:"eventType"`
	EventTypeVersion   string   `json:"eventTypeVersion"`
	CloudEventsVersion string   `json:"cloudEventsVersion"`
	Source             string   `json:"source"`
	EventID            string   `json:"eventId"`
	EventTime          oktaTime `json:"eventTime"`
	ContentType        string   `json:"contentType"`
	Data               struct {
		Events []json.RawMessage `json:"events"`
	} `json:"data"`
}

// deliver POSTs one delivery, retrying once after a 5xx, a timeout or a
// connection failure, never after a 4xx; a retry carries the same eventId.
func (d *hookDispatcher) deliver(dl hookDelivery) {
	d.mu.Lock()
	d.seq++
	seq := d.seq
	d.mu.Unlock()
	p := hookPayload{
		EventType: "com.okta.event_hook", EventTypeVersion: "1.0", CloudEventsVersion: "0.1",
		Source:  d.org.href("/api/v1/eventHooks/" + dl.ch.id),
		EventID: deliveryID(seq), EventTime: oktaTime(d.org.clock.Now()), ContentType: "application/json",
	}
	p.Data.Events = dl.events
	body := render(p)
	var why string
	for attempt := 1; attempt <= 2; attempt++ {
		status, err := d.call(http.MethodPost, dl.ch, body, "")
		if d.ctx.Err() != nil {
			return // closing: the delivery is abandoned, not failed
		}
		if err == nil && status >= 200 && status < 300 {
			d.count(func(s *HookStats) { s.Delivered++; s.Events += len(dl.events) })
			return
		}
		if err != nil {
			why = "the receiver did not answer: " + err.Error()
		} else {
			why = fmt.Sprintf("the receiver answered HTTP %d", status)
		}
		if err == nil && status < 500 {
			break // Okta retries only after a 5xx or a timeout
		}
		if attempt == 1 {
			d.count(func(s *HookStats) { s.Retried++ })
		}
	}
	d.count(func(s *HookStats) { s.Failed++ })
	// Okta logs each failed delivery (event_hook.delivery fires only on
	// failure). The type is not hook-eligible, so this cannot loop.
	o := d.org
	o.mu.Lock()
	o.emitHookOutcome("event_hook.delivery", "Event hook delivery failed: "+why, false, oktaSystemActor(), dl.ch.target())
	o.mu.Unlock()
}

// oktaSystemActor is the actor of what Okta does on its own.
func oktaSystemActor() LogActor {
	return LogActor{ID: "0oaoktasystem000000a", Type: "SystemPrincipal", AlternateID: "system@okta.com", DisplayName: "Okta System"}
}

// callTimeout is how long a receiver has to answer; tests shorten it.
func (d *hookDispatcher) callTimeout() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timeout
}

func (d *hookDispatcher) count(f func(*HookStats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// deliveryID is a deterministic, UUID-shaped eventId for the seq-th delivery.
func deliveryID(seq uint64) string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(seq*2246822519), uint16(seq>>32), uint16(seq)&0xfff, uint16(seq*40503)&0xfff, seq)
}

// call makes one request to a hook's URI and returns the status, or an
// error when no answer came within Okta's timeout.
func (d *hookDispatcher) call(method string, ch hookChannel, body []byte, challenge string) (int, error) {
	status, _, err := d.callRead(d.ctx, method, ch, body, challenge)
	return status, err
}

// callRead makes one request to a hook's URI with its extra headers and its
// auth header (and the challenge header when verifying), within Okta's
// timeout, and returns the status and the body of the answer.
func (d *hookDispatcher) callRead(parent context.Context, method string, ch hookChannel, body []byte, challenge string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(parent, d.callTimeout())
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, ch.uri, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("build request to %s: %w", ch.uri, err)
	}
	for _, h := range ch.headers {
		req.Header.Set(h.Key, h.Value)
	}
	if ch.authKey != "" {
		req.Header.Set(ch.authKey, ch.authVal)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Okta Event Hooks (oktasim)")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if challenge != "" {
		req.Header.Set("X-Okta-Verification-Challenge", challenge)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, ch.uri, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer of %s: %w", ch.uri, err)
	}
	return resp.StatusCode, b, nil
}

// verify runs the one-time verification of hook id; see VerifyEventHook.
// The call is made without org.mu: the receiver may well call the org back.
func (d *hookDispatcher) verify(ctx context.Context, by *LogActor, id string) (*EventHook, error) {
	o := d.org
	o.mu.RLock()
	h, ok := o.hooks.get(id)
	var ch hookChannel
	if ok {
		ch = hookChannelOf(h)
	}
	o.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("verify event hook %s: %w", id, ErrNotFound)
	}
	why := d.challenge(ctx, ch, rand.Text())
	h, err := o.setHookVerified(by, id, ch, why == "")
	if err != nil {
		return nil, err
	}
	if why != "" {
		return h, fmt.Errorf("verify event hook %s: %w", id, hookInvalidf("eventHook: Verification failed: %s", why))
	}
	return h, nil
}

// challenge sends the verification GET, once more after a 5xx or a
// timeout, and returns why it failed, or "".
func (d *hookDispatcher) challenge(ctx context.Context, ch hookChannel, value string) string {
	var why string
	for range 2 {
		status, body, err := d.callRead(ctx, http.MethodGet, ch, nil, value)
		switch {
		case err != nil:
			why = "the endpoint did not answer within 3 seconds or could not be reached"
			if ctx.Err() != nil {
				return why
			}
			continue
		case status >= 500:
			why = fmt.Sprintf("the endpoint answered HTTP %d", status)
			continue
		case status != http.StatusOK:
			return fmt.Sprintf("the endpoint answered HTTP %d, not 200", status)
		}
		var answer struct {
			Verification *string `json:"verification"`
		}
		if err := json.Unmarshal(body, &answer); err != nil || answer.Verification == nil {
			return `the answer is not JSON of the form {"verification":"<challenge>"}`
		}
		if *answer.Verification != value {
			return "the answer does not echo the x-okta-verification-challenge value"
		}
		return ""
	}
	return why
}

// target names the hook of a channel in the System Log.
func (c hookChannel) target() LogActor {
	return LogActor{ID: c.id, Type: "EventHook", AlternateID: c.uri, DisplayName: c.name}
}

// Handlers.

func (s *Server) routesHooks() {
	s.handle("/api/v1/eventHooks", map[string]http.HandlerFunc{
		http.MethodGet:  s.listHooks,
		http.MethodPost: s.createHook,
	})
	s.handle("/api/v1/eventHooks/{eventHookId}", map[string]http.HandlerFunc{
		http.MethodGet:    s.getHook,
		http.MethodPut:    s.replaceHook,
		http.MethodDelete: s.deleteHook,
	})
	s.handle("/api/v1/eventHooks/{eventHookId}/lifecycle/activate", map[string]http.HandlerFunc{
		http.MethodPost: s.hookStatus(HookActive),
	})
	s.handle("/api/v1/eventHooks/{eventHookId}/lifecycle/deactivate", map[string]http.HandlerFunc{
		http.MethodPost: s.hookStatus(HookInactive),
	})
	s.handle("/api/v1/eventHooks/{eventHookId}/lifecycle/verify", map[string]http.HandlerFunc{
		http.MethodPost: s.verifyHook,
	})
}

func (s *Server) listHooks(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageHooks) {
		return
	}
	o := s.org
	o.mu.RLock()
	items := make([][]byte, 0, o.hooks.len())
	o.hooks.each(func(_ string, h *EventHook) bool {
		items = append(items, render(o.hookView(h)))
		return true
	})
	o.mu.RUnlock()
	writeArray(w, items)
}

func (s *Server) getHook(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageHooks) {
		return
	}
	id := r.PathValue("eventHookId")
	o := s.org
	o.mu.RLock()
	h, ok := o.hooks.get(id)
	var raw []byte
	if ok {
		raw = render(o.hookView(h))
	}
	o.mu.RUnlock()
	if !ok {
		notFound(w, id)
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

func (s *Server) createHook(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageHooks) {
		return
	}
	var in hookInput
	if !decodeBody(w, r, &in) {
		return
	}
	sp, causes := in.spec()
	if len(causes) > 0 {
		invalid(w, causes...)
		return
	}
	a := actorOf(r)
	h, err := s.org.CreateEventHook(&a, sp)
	s.answerHook(w, h, err, "")
}

func (s *Server) replaceHook(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageHooks) {
		return
	}
	id := r.PathValue("eventHookId")
	var in hookInput
	if !decodeBody(w, r, &in) {
		return
	}
	sp, causes := in.spec()
	if len(causes) > 0 {
		// An unknown hook is a 404 even with a bad body.
		s.org.mu.RLock()
		_, ok := s.org.hooks.get(id)
		s.org.mu.RUnlock()
		if !ok {
			notFound(w, id)
			return
		}
		invalid(w, causes...)
		return
	}
	a := actorOf(r)
	h, err := s.org.ReplaceEventHook(&a, id, sp)
	s.answerHook(w, h, err, id)
}

func (s *Server) deleteHook(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageHooks) {
		return
	}
	id := r.PathValue("eventHookId")
	a := actorOf(r)
	if err := s.org.DeleteEventHook(&a, id); err != nil {
		s.answerHook(w, nil, err, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) hookStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canManageHooks) {
			return
		}
		id := r.PathValue("eventHookId")
		a := actorOf(r)
		h, err := s.org.SetEventHookStatus(&a, id, status)
		s.answerHook(w, h, err, id)
	}
}

func (s *Server) verifyHook(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageHooks) {
		return
	}
	id := r.PathValue("eventHookId")
	a := actorOf(r)
	h, err := s.hooks.verify(r.Context(), &a, id)
	s.answerHook(w, h, err, id)
}

// answerHook answers a hook, or the Okta error for err.
func (s *Server) answerHook(w http.ResponseWriter, h *EventHook, err error, id string) {
	switch {
	case errors.Is(err, ErrNotFound):
		notFound(w, id)
	case errors.Is(err, ErrInvalid):
		invalid(w, hookValidationCauses(err)...)
	case err != nil:
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
	default:
		s.org.mu.RLock()
		raw := render(s.org.hookView(h))
		s.org.mu.RUnlock()
		writeRaw(w, http.StatusOK, raw)
	}
}

// hookInput is the request body of a create or replace (spec: EventHook).
type hookInput struct {
	Name string `json:"name"`
	// Description is accepted but not kept: EventHook (org.go) has no
	// field for it, so answers render it null.
	Description *string `json:"description"`
	Events      *struct {
		Type   string          `json:"type"`
		Items  []string        `json:"items"`
		Filter json.RawMessage `json:"filter"`
	} `json:"events"`
	Channel *struct {
		Type    string `json:"type"`
		Version string `json:"version"`
		Config  *struct {
			URI        string        `json:"uri"`
			Headers    []*HookHeader `json:"headers"`
			AuthScheme *struct {
				Type  string `json:"type"`
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"authScheme"`
		} `json:"config"`
	} `json:"channel"`
}

// spec checks the body's shape and returns the spec it describes, or the
// causes of a 400 (with those of the spec's own validation, so that one
// answer names every problem).
func (in hookInput) spec() (EventHookSpec, []string) {
	var sp EventHookSpec
	var causes []string
	sp.Name = in.Name
	switch {
	case in.Events == nil:
		causes = append(causes, "events: The field cannot be left blank")
	default:
		if in.Events.Type != "EVENT_TYPE" {
			causes = append(causes, "events.type: The only supported type is EVENT_TYPE")
		}
		if f := bytes.TrimSpace(in.Events.Filter); len(f) > 0 && !bytes.Equal(f, []byte("null")) {
			// Event hook filters are a self-service Early Access feature;
			// this org has not enabled it.
			causes = append(causes, "events.filter: Event hook filters are not enabled for this org")
		}
		sp.Events = in.Events.Items
	}
	switch {
	case in.Channel == nil:
		causes = append(causes, "channel: The field cannot be left blank")
	default:
		if in.Channel.Type != "HTTP" {
			causes = append(causes, "channel.type: The only supported type is HTTP")
		}
		if in.Channel.Version != "1.0.0" {
			causes = append(causes, "channel.version: The only supported version is 1.0.0")
		}
		if c := in.Channel.Config; c != nil {
			sp.URI = c.URI
			for _, h := range c.Headers {
				if h != nil {
					sp.Headers = append(sp.Headers, *h)
				}
			}
			if a := c.AuthScheme; a != nil {
				if a.Type != "HEADER" {
					causes = append(causes, "channel.config.authScheme.type: The only supported type is HEADER")
				}
				sp.AuthKey, sp.AuthValue = a.Key, a.Value
			}
		}
	}
	if len(causes) > 0 {
		if err := sp.validate(); err != nil {
			causes = append(causes, hookValidationCauses(err)...)
		}
	}
	return sp, causes
}

// hookView is the JSON shape of an event hook (spec: EventHook). The auth
// header's value is write-only and never rendered.
type hookView struct {
	ID                 string          `json:"id"`
	Status             string          `json:"status"`
	VerificationStatus string          `json:"verificationStatus"`
	Name               string          `json:"name"`
	Description        *string         `json:"description"`
	Created            oktaTime        `json:"created"`
	LastUpdated        oktaTime        `json:"lastUpdated"`
	Events             hookEventsView  `json:"events"`
	Channel            hookChannelView `json:"channel"`
	Links              map[string]any  `json:"_links"`
}

type hookEventsView struct {
	Type   string    `json:"type"`
	Items  []string  `json:"items"`
	Filter *struct{} `json:"filter"`
}

type hookChannelView struct {
	Type    string `json:"type"`
	Version string `json:"version"`
	Config  struct {
		URI        string        `json:"uri"`
		Headers    []HookHeader  `json:"headers"`
		Method     string        `json:"method"`
		AuthScheme *hookAuthView `json:"authScheme"`
	} `json:"config"`
}

type hookAuthView struct {
	Type string `json:"type"`
	Key  string `json:"key"`
}

// hookView renders a hook; o.mu is held.
func (o *Org) hookView(h *EventHook) hookView {
	self := o.href("/api/v1/eventHooks/" + h.ID)
	post := map[string]any{"allow": []string{"POST"}}
	links := map[string]any{
		"self":   map[string]any{"href": self},
		"verify": map[string]any{"href": self + "/lifecycle/verify", "hints": post},
	}
	if h.Status == HookActive {
		links["deactivate"] = map[string]any{"href": self + "/lifecycle/deactivate", "hints": post}
	} else {
		links["activate"] = map[string]any{"href": self + "/lifecycle/activate", "hints": post}
	}
	v := hookView{
		ID: h.ID, Status: h.Status, VerificationStatus: h.VerificationStatus, Name: h.Name,
		Created: oktaTime(h.Created), LastUpdated: oktaTime(h.LastUpdated),
		Events: hookEventsView{Type: "EVENT_TYPE", Items: h.Events},
		Links:  links,
	}
	if v.Events.Items == nil {
		v.Events.Items = []string{}
	}
	v.Channel.Type, v.Channel.Version = "HTTP", "1.0.0"
	v.Channel.Config.URI, v.Channel.Config.Method = h.URI, "POST"
	v.Channel.Config.Headers = h.Headers
	if v.Channel.Config.Headers == nil {
		v.Channel.Config.Headers = []HookHeader{}
	}
	if h.AuthHeaderKey != "" {
		v.Channel.Config.AuthScheme = &hookAuthView{Type: "HEADER", Key: h.AuthHeaderKey}
	}
	return v
}
