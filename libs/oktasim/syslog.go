package oktasim

import (
	"fmt"
	"time"
)

// emit appends a System Log event for a change and hands it to the hook
// dispatcher; o.mu must be held for writing. Every write of the API and of
// the simulator's admin endpoints calls it, so that the log and the hooks
// see every change.
func (o *Org) emit(eventType, message string, actor LogActor, targets ...LogActor) *LogEvent {
	seq := uint64(len(o.logs) + 1)
	ev := &LogEvent{
		UUID:           logUUID(seq),
		Published:      o.clock.Now(),
		EventType:      eventType,
		DisplayMessage: message,
		Severity:       "INFO",
		Actor:          actor,
		Outcome:        "SUCCESS",
		Targets:        targets,
		seq:            seq,
	}
	ev.raw = render(ev.view())
	o.logs = append(o.logs, ev)
	if o.hookOut != nil {
		o.hookOut(ev)
	}
	return ev
}

// logUUID is a deterministic, UUID-shaped id for the seq-th event.
func logUUID(seq uint64) string {
	return fmt.Sprintf("%08x-%04x-11f0-%04x-%012x", uint32(seq>>16), uint16(seq), uint16(seq*7919), seq*2654435761)
}

// logEventView is the JSON shape of a System Log event.
type logEventView struct {
	UUID           string         `json:"uuid"`
	Published      oktaTime       `json:"published"`
	EventType      string         `json:"eventType"`
	Version        string         `json:"version"`
	Severity       string         `json:"severity"`
	DisplayMessage string         `json:"displayMessage"`
	Actor          LogActor       `json:"actor"`
	Client         map[string]any `json:"client"`
	Outcome        map[string]any `json:"outcome"`
	Target         []LogActor     `json:"target"`
	Transaction    map[string]any `json:"transaction"`
	DebugContext   map[string]any `json:"debugContext"`
	AuthContext    map[string]any `json:"authenticationContext"`
	SecurityCtx    map[string]any `json:"securityContext"`
	Request        map[string]any `json:"request"`
}

func (e *LogEvent) view() logEventView {
	targets := e.Targets
	if targets == nil {
		targets = []LogActor{}
	}
	return logEventView{
		UUID:           e.UUID,
		Published:      oktaTime(e.Published),
		EventType:      e.EventType,
		Version:        "0",
		Severity:       e.Severity,
		DisplayMessage: e.DisplayMessage,
		Actor:          e.Actor,
		Client:         map[string]any{"userAgent": map[string]any{"rawUserAgent": "okta-sdk-golang"}, "zone": "null", "ipAddress": "127.0.0.1"},
		Outcome:        map[string]any{"result": e.Outcome},
		Target:         targets,
		Transaction:    map[string]any{"type": "WEB", "id": fmt.Sprintf("sim%d", e.seq), "detail": map[string]any{}},
		DebugContext:   map[string]any{"debugData": map[string]any{}},
		AuthContext:    map[string]any{"externalSessionId": "sim"},
		SecurityCtx:    map[string]any{},
		Request:        map[string]any{"ipChain": []any{}},
	}
}

// Target helpers name objects as the System Log does.
func userTarget(u *User) LogActor {
	return LogActor{ID: u.ID, Type: "User", AlternateID: u.Profile.Login, DisplayName: u.Profile.FirstName + " " + u.Profile.LastName}
}

func groupTarget(g *Group) LogActor {
	return LogActor{ID: g.ID, Type: "UserGroup", AlternateID: "unknown", DisplayName: g.Name}
}

func appTarget(a *App) LogActor {
	return LogActor{ID: a.ID, Type: "AppInstance", AlternateID: a.Label, DisplayName: a.Label}
}

// sinceTime is a helper for handlers parsing System Log times.
func parseOktaTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339, s)
}
