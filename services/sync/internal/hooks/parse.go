// Package hooks receives Okta event hook deliveries and turns them into
// targeted resyncs: an HTTP receiver stores each authenticated delivery in
// the OKTA_HOOKS stream before Okta gets its answer; a durable intake splits
// deliveries into System Log events, drops events it has already handled,
// maps each governance event type to what must be re-read (Targets), and
// hands the targets to a Coalescer, which turns bursts into one handoff per
// window to a Sink (the targeted resync). See docs/realtime.md.
package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// HookEventType is the eventType of every Okta event hook delivery envelope.
const HookEventType = "com.okta.event_hook"

// Delivery is one Okta event hook request body.
type Delivery struct {
	// EventType is HookEventType.
	EventType string
	// EventTypeVersion is the envelope's version ("1.0").
	EventTypeVersion string
	// EventID identifies the delivery; Okta's retry of a delivery carries
	// the same id.
	EventID string
	// EventTime is when Okta sent the delivery; zero when absent or not a time.
	EventTime time.Time
	// Source is the URL of the event hook in Okta.
	Source string
	// Events are the System Log events of the delivery that have a uuid and
	// an eventType, in the delivery's order.
	Events []LogEvent
	// Invalid counts events left out of Events: not an object of the
	// System Log event shape, or without uuid or eventType.
	Invalid int
}

// LogEvent is the part of an Okta System Log event (LogEvent) that accessbus
// uses.
type LogEvent struct {
	// UUID identifies the event across deliveries and the System Log.
	UUID string
	// Published is when the event happened; zero when absent or not a time.
	Published time.Time
	// EventType is the System Log event type, such as group.user_membership.add.
	EventType string
	// DisplayMessage is Okta's human-readable summary.
	DisplayMessage string
	// Actor is who made the change.
	Actor Actor
	// Targets are the objects the event names, in no guaranteed order.
	Targets []Actor
	// Outcome is the event's outcome.
	Outcome Outcome
}

// Actor is an actor or a target of a System Log event.
type Actor struct {
	// ID is the Okta id (00u..., 00g..., 0oa..., cr0..., iam...).
	ID string `json:"id"`
	// Type is Okta's object type: User, UserGroup, AppInstance, AppUser,
	// CUSTOM_ROLE, RESOURCE_SET, ...
	Type string `json:"type"`
	// AlternateID is a login, a label, or "unknown".
	AlternateID string `json:"alternateId"`
	// DisplayName is a name for people.
	DisplayName string `json:"displayName"`
}

// Outcome is a System Log event's outcome.
type Outcome struct {
	// Result is SUCCESS, FAILURE, SKIPPED, ALLOW, DENY, CHALLENGE or UNKNOWN.
	Result string `json:"result"`
	// Reason says why, when Okta says.
	Reason string `json:"reason"`
}

// envelope is the JSON shape of a delivery.
type envelope struct {
	EventType        *string `json:"eventType"`
	EventTypeVersion string  `json:"eventTypeVersion"`
	EventID          *string `json:"eventId"`
	EventTime        string  `json:"eventTime"`
	Source           string  `json:"source"`
	Data             *struct {
		Events *[]json.RawMessage `json:"events"`
	} `json:"data"`
}

// logEventJSON is the JSON shape of the fields of LogEvent.
type logEventJSON struct {
	UUID           string   `json:"uuid"`
	Published      string   `json:"published"`
	EventType      string   `json:"eventType"`
	DisplayMessage string   `json:"displayMessage"`
	Actor          *Actor   `json:"actor"`
	Target         []*Actor `json:"target"`
	Outcome        *Outcome `json:"outcome"`
}

// Parse decodes an Okta event hook delivery. It returns an error wrapping
// ErrMalformed when body is not one JSON object with eventType
// "com.okta.event_hook", a non-empty eventId and a data.events array. Events
// of the array that are not usable (not an object of the right shape, or
// without uuid or eventType) are counted in Invalid instead of failing the
// whole delivery, so that one odd event never costs the others.
func Parse(body []byte) (Delivery, error) {
	var d Delivery
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return d, fmt.Errorf("parse delivery: %w: the body is not a JSON object", ErrMalformed)
	}
	var env envelope
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return d, fmt.Errorf("parse delivery: %w: %v", ErrMalformed, err)
	}
	switch {
	case env.EventType == nil || *env.EventType != HookEventType:
		return d, fmt.Errorf("parse delivery: %w: eventType is not %s", ErrMalformed, HookEventType)
	case env.EventID == nil || *env.EventID == "":
		return d, fmt.Errorf("parse delivery: %w: eventId is missing", ErrMalformed)
	case env.Data == nil || env.Data.Events == nil:
		return d, fmt.Errorf("parse delivery: %w: data.events is missing", ErrMalformed)
	}
	d.EventType, d.EventTypeVersion, d.EventID, d.Source = *env.EventType, env.EventTypeVersion, *env.EventID, env.Source
	d.EventTime = parseTime(env.EventTime)
	raw := *env.Data.Events
	d.Events = make([]LogEvent, 0, len(raw))
	for _, r := range raw {
		ev, ok := parseEvent(r)
		if !ok {
			d.Invalid++
			continue
		}
		d.Events = append(d.Events, ev)
	}
	return d, nil
}

// parseEvent decodes one System Log event, reporting whether it is usable.
func parseEvent(raw json.RawMessage) (LogEvent, bool) {
	var j logEventJSON
	if len(raw) == 0 || raw[0] != '{' {
		return LogEvent{}, false
	}
	if err := json.Unmarshal(raw, &j); err != nil || j.UUID == "" || j.EventType == "" {
		return LogEvent{}, false
	}
	ev := LogEvent{
		UUID: j.UUID, Published: parseTime(j.Published), EventType: j.EventType,
		DisplayMessage: j.DisplayMessage,
	}
	if j.Actor != nil {
		ev.Actor = *j.Actor
	}
	if j.Outcome != nil {
		ev.Outcome = *j.Outcome
	}
	for _, t := range j.Target {
		if t != nil {
			ev.Targets = append(ev.Targets, *t)
		}
	}
	return ev, true
}

// parseTime reads Okta's RFC 3339 times; anything else is the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
