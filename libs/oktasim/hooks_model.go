package oktasim

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// maxActiveHooks is Okta's limit of active event hooks per org.
const maxActiveHooks = 25

// Event hook statuses.
const (
	HookActive     = "ACTIVE"
	HookInactive   = "INACTIVE"
	HookVerified   = "VERIFIED"
	HookUnverified = "UNVERIFIED"
)

// EventHookSpec is what a client registers for an event hook: the writable
// fields of Okta's EventHook.
type EventHookSpec struct {
	Name string
	// Events are the subscribed event types; each must be hook-eligible.
	Events []string
	// URI receives the verification GET and the deliveries. Okta requires
	// https; the simulator also accepts http to a loopback host
	// (127.0.0.1, ::1, localhost), where test receivers listen.
	URI     string
	Headers []HookHeader
	// AuthKey and AuthValue are the header Okta adds to every call, for
	// example "Authorization: <secret>". AuthValue is write-only.
	AuthKey   string
	AuthValue string
}

// hookValidationError is an ErrInvalid with Okta's error causes, one per
// problem found, so that a handler can answer 400 E0000001 with them.
type hookValidationError struct {
	Causes []string
}

func (e *hookValidationError) Error() string {
	return "validation failed: " + strings.Join(e.Causes, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *hookValidationError) Unwrap() error { return ErrInvalid }

// hookInvalidf is a hookValidationError with one cause.
func hookInvalidf(format string, args ...any) error {
	return &hookValidationError{Causes: []string{fmt.Sprintf(format, args...)}}
}

// hookEligible reports whether hooks may subscribe to an event type.
func hookEligible(eventType string) bool {
	_, ok := slices.BinarySearch(hookEligibleEventTypes, eventType)
	return ok
}

// validate checks a spec as Okta does before it stores a hook.
func (sp EventHookSpec) validate() error {
	var causes []string
	if strings.TrimSpace(sp.Name) == "" {
		causes = append(causes, "name: The field cannot be left blank")
	}
	if len(sp.Events) == 0 {
		causes = append(causes, "events.items: At least one event type is required")
	}
	for _, t := range sp.Events {
		if !hookEligible(t) {
			causes = append(causes, fmt.Sprintf("events.items: The event type %s is not eligible for event hooks", t))
		}
	}
	if c := checkHookURI(sp.URI); c != "" {
		causes = append(causes, c)
	}
	for _, h := range sp.Headers {
		if strings.TrimSpace(h.Key) == "" {
			causes = append(causes, "channel.config.headers: a header needs a key")
		}
	}
	if sp.AuthValue != "" && strings.TrimSpace(sp.AuthKey) == "" {
		causes = append(causes, "channel.config.authScheme.key: The field cannot be left blank")
	}
	if len(causes) > 0 {
		return &hookValidationError{Causes: causes}
	}
	return nil
}

// checkHookURI returns why uri cannot receive hooks, or "". Okta insists on
// https; the simulator lets test receivers on a loopback host use http,
// since they cannot easily present a certificate the simulator trusts.
func checkHookURI(uri string) string {
	if strings.TrimSpace(uri) == "" {
		return "channel.config.uri: The field cannot be left blank"
	}
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return "channel.config.uri: The URI is not valid"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return ""
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return ""
		}
	}
	return "channel.config.uri: The URI must use HTTPS (the simulator also accepts http://127.0.0.1 and http://localhost)"
}

// activeHooks counts the org's active hooks; o.mu is held.
func (o *Org) activeHooks() int {
	n := 0
	o.hooks.each(func(_ string, h *EventHook) bool {
		if h.Status == HookActive {
			n++
		}
		return true
	})
	return n
}

// hookTarget names an event hook in the System Log.
func hookTarget(h *EventHook) LogActor {
	return LogActor{ID: h.ID, Type: "EventHook", AlternateID: h.URI, DisplayName: h.Name}
}

// CreateEventHook registers an event hook. As in Okta it starts ACTIVE and
// UNVERIFIED: it receives nothing until it has been verified.
func (o *Org) CreateEventHook(by *LogActor, sp EventHookSpec) (*EventHook, error) {
	if err := sp.validate(); err != nil {
		return nil, fmt.Errorf("create event hook: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.activeHooks() >= maxActiveHooks {
		return nil, fmt.Errorf("create event hook: %w", hookInvalidf("eventHook: An org can have at most %d active event hooks", maxActiveHooks))
	}
	now := o.clock.Now()
	h := &EventHook{
		ID: o.newID("who"), Name: sp.Name, Status: HookActive, VerificationStatus: HookUnverified,
		Events: slices.Clone(sp.Events), URI: sp.URI, Headers: slices.Clone(sp.Headers),
		AuthHeaderKey: sp.AuthKey, AuthHeaderValue: sp.AuthValue, Created: now, LastUpdated: now,
	}
	o.hooks.put(h.ID, h)
	if by != nil {
		o.emit("event_hook.created", "Event hook created", *by, hookTarget(h))
	}
	return h, nil
}

// ReplaceEventHook replaces a hook's name, events and channel. Changing the
// channel (URI, headers or auth header) makes the hook UNVERIFIED again, as
// Okta requires a new verification. Because the auth value is write-only and
// never read back, a spec that names the same auth key without a value keeps
// the stored secret.
func (o *Org) ReplaceEventHook(by *LogActor, id string, sp EventHookSpec) (*EventHook, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, ok := o.hooks.get(id)
	if !ok {
		return nil, fmt.Errorf("replace event hook %s: %w", id, ErrNotFound)
	}
	if sp.AuthValue == "" && sp.AuthKey != "" && strings.EqualFold(sp.AuthKey, h.AuthHeaderKey) {
		sp.AuthValue = h.AuthHeaderValue
	}
	if err := sp.validate(); err != nil {
		return nil, fmt.Errorf("replace event hook %s: %w", id, err)
	}
	channelChanged := sp.URI != h.URI || !slices.Equal(sp.Headers, h.Headers) ||
		sp.AuthKey != h.AuthHeaderKey || sp.AuthValue != h.AuthHeaderValue
	h.Name, h.Events, h.URI, h.Headers = sp.Name, slices.Clone(sp.Events), sp.URI, slices.Clone(sp.Headers)
	h.AuthHeaderKey, h.AuthHeaderValue = sp.AuthKey, sp.AuthValue
	if channelChanged {
		h.VerificationStatus = HookUnverified
	}
	h.LastUpdated = o.clock.Now()
	if by != nil {
		o.emit("event_hook.updated", "Event hook updated", *by, hookTarget(h))
	}
	return h, nil
}

// SetEventHookStatus activates (ACTIVE) or deactivates (INACTIVE) a hook.
// Setting the status a hook already has changes nothing and logs nothing.
func (o *Org) SetEventHookStatus(by *LogActor, id, status string) (*EventHook, error) {
	if status != HookActive && status != HookInactive {
		return nil, fmt.Errorf("event hook %s status %q: %w", id, status, hookInvalidf("status: must be ACTIVE or INACTIVE"))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	h, ok := o.hooks.get(id)
	if !ok {
		return nil, fmt.Errorf("event hook %s: %w", id, ErrNotFound)
	}
	if h.Status == status {
		return h, nil
	}
	if status == HookActive && o.activeHooks() >= maxActiveHooks {
		return nil, fmt.Errorf("activate event hook %s: %w", id, hookInvalidf("eventHook: An org can have at most %d active event hooks", maxActiveHooks))
	}
	h.Status = status
	h.LastUpdated = o.clock.Now()
	if by != nil {
		ev, msg := "event_hook.activated", "Event hook activated"
		if status == HookInactive {
			ev, msg = "event_hook.deactivated", "Event hook deactivated"
		}
		o.emit(ev, msg, *by, hookTarget(h))
	}
	return h, nil
}

// DeleteEventHook deletes an INACTIVE hook; Okta refuses to delete an
// active one, as a safety precaution.
func (o *Org) DeleteEventHook(by *LogActor, id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, ok := o.hooks.get(id)
	if !ok {
		return fmt.Errorf("delete event hook %s: %w", id, ErrNotFound)
	}
	if h.Status != HookInactive {
		return fmt.Errorf("delete event hook %s: %w", id, hookInvalidf("eventHook: Only an INACTIVE event hook can be deleted; deactivate it first"))
	}
	o.hooks.del(id)
	if by != nil {
		o.emit("event_hook.deleted", "Event hook deleted", *by, hookTarget(h))
	}
	return nil
}

// setHookVerified records the outcome of a verification and logs it
// (event_hook.verified fires whether or not it succeeded). The hook becomes
// VERIFIED only if its channel is still the one that was checked.
func (o *Org) setHookVerified(by *LogActor, id string, checked hookChannel, ok bool) (*EventHook, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, found := o.hooks.get(id)
	if !found {
		return nil, fmt.Errorf("verify event hook %s: %w", id, ErrNotFound)
	}
	if ok && hookChannelOf(h).same(checked) {
		h.VerificationStatus = HookVerified
		h.LastUpdated = o.clock.Now()
	}
	if by != nil {
		o.emitHookOutcome("event_hook.verified", "Event hook verified", ok, *by, hookTarget(h))
	}
	return h, nil
}

// emitHookOutcome emits an event whose outcome is SUCCESS or FAILURE; o.mu is
// held for writing. emit always records SUCCESS, so a failure is set and
// rendered again while the lock that appended the event is still held: no
// log reader can have seen it yet, and the hook dispatcher reads only the
// raw JSON of hook-eligible types, which event_hook.* events are not.
func (o *Org) emitHookOutcome(eventType, message string, ok bool, actor LogActor, targets ...LogActor) {
	ev := o.emit(eventType, message, actor, targets...)
	if !ok {
		ev.Outcome = "FAILURE"
		ev.raw = render(ev.view())
	}
}

// hookChannel is a copy of where and how a hook is called, taken under
// o.mu so that HTTP calls can be made without it.
type hookChannel struct {
	id, name, uri    string
	headers          []HookHeader
	authKey, authVal string
	events           []string
}

func hookChannelOf(h *EventHook) hookChannel {
	return hookChannel{
		id: h.ID, name: h.Name, uri: h.URI, headers: slices.Clone(h.Headers),
		authKey: h.AuthHeaderKey, authVal: h.AuthHeaderValue, events: slices.Clone(h.Events),
	}
}

func (c hookChannel) same(o hookChannel) bool {
	return c.uri == o.uri && slices.Equal(c.headers, o.headers) && c.authKey == o.authKey && c.authVal == o.authVal
}

// subscribes reports whether the hook wants events of this type.
func (c hookChannel) subscribes(eventType string) bool {
	return slices.Contains(c.events, eventType)
}

// hookValidationCauses returns the causes of a hookValidationError in err,
// or the error's text.
func hookValidationCauses(err error) []string {
	var ve *hookValidationError
	if errors.As(err, &ve) {
		return ve.Causes
	}
	return []string{err.Error()}
}
