package hooks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// simDelivery is a delivery as the simulator (and Okta) sends it.
const simDelivery = `{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1",
"source":"https://example.okta.com/api/v1/eventHooks/who1","eventId":"b0e2c1d4-0001-4001-a001-000000000001",
"eventTime":"2026-11-01T09:00:01.250Z","contentType":"application/json","data":{"events":[
{"uuid":"e1","published":"2026-11-01T09:00:00.100Z","eventType":"group.user_membership.add","version":"0","severity":"INFO",
 "displayMessage":"Add user to group membership","actor":{"id":"00uadmin","type":"User","alternateId":"admin@example.com","displayName":"Ad Min"},
 "client":{"zone":"null"},"outcome":{"result":"SUCCESS"},
 "target":[{"id":"00u1","type":"User","alternateId":"ann@example.com","displayName":"Ann Lee"},{"id":"00g1","type":"UserGroup","alternateId":"unknown","displayName":"Eng"}],
 "transaction":{"type":"WEB","id":"sim1","detail":{}},"debugContext":{"debugData":{}}},
{"uuid":"e2","published":"2026-11-01T09:00:00.200Z","eventType":"user.lifecycle.suspend","actor":{"id":"00uadmin","type":"User"},
 "outcome":{"result":"SUCCESS"},"target":[{"id":"00u2","type":"User"}]}
]}}`

func TestParseADelivery(t *testing.T) {
	d, err := hooks.Parse([]byte(simDelivery))
	if err != nil {
		t.Fatal(err)
	}
	if d.EventType != hooks.HookEventType || d.EventID != "b0e2c1d4-0001-4001-a001-000000000001" || d.EventTypeVersion != "1.0" ||
		d.Source != "https://example.okta.com/api/v1/eventHooks/who1" || d.Invalid != 0 {
		t.Fatalf("envelope %+v", d)
	}
	if want := time.Date(2026, 11, 1, 9, 0, 1, 250e6, time.UTC); !d.EventTime.Equal(want) {
		t.Fatalf("eventTime %v, want %v", d.EventTime, want)
	}
	if len(d.Events) != 2 {
		t.Fatalf("events %+v", d.Events)
	}
	e := d.Events[0]
	if e.UUID != "e1" || e.EventType != "group.user_membership.add" || e.Outcome.Result != "SUCCESS" ||
		e.Actor.ID != "00uadmin" || e.Actor.AlternateID != "admin@example.com" || e.DisplayMessage != "Add user to group membership" ||
		!e.Published.Equal(time.Date(2026, 11, 1, 9, 0, 0, 100e6, time.UTC)) {
		t.Fatalf("event %+v", e)
	}
	if len(e.Targets) != 2 || e.Targets[0] != (hooks.Actor{ID: "00u1", Type: "User", AlternateID: "ann@example.com", DisplayName: "Ann Lee"}) ||
		e.Targets[1].Type != "UserGroup" {
		t.Fatalf("targets %+v", e.Targets)
	}
}

func TestParseRefusesWhatIsNotADelivery(t *testing.T) {
	for name, body := range map[string]string{
		"empty":              ``,
		"not json":           `hello`,
		"array":              `[{"eventType":"com.okta.event_hook"}]`,
		"truncated":          simDelivery[:200],
		"trailing garbage":   simDelivery + `}`,
		"wrong event type":   `{"eventType":"com.okta.other","eventId":"x","data":{"events":[]}}`,
		"no event type":      `{"eventId":"x","data":{"events":[]}}`,
		"no event id":        `{"eventType":"com.okta.event_hook","data":{"events":[]}}`,
		"empty event id":     `{"eventType":"com.okta.event_hook","eventId":"","data":{"events":[]}}`,
		"event id a number":  `{"eventType":"com.okta.event_hook","eventId":7,"data":{"events":[]}}`,
		"no data":            `{"eventType":"com.okta.event_hook","eventId":"x"}`,
		"no events":          `{"eventType":"com.okta.event_hook","eventId":"x","data":{}}`,
		"events not a list":  `{"eventType":"com.okta.event_hook","eventId":"x","data":{"events":{}}}`,
		"events null":        `{"eventType":"com.okta.event_hook","eventId":"x","data":{"events":null}}`,
		"verification shape": `{"verification":"abc"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := hooks.Parse([]byte(body)); !errors.Is(err, hooks.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// TestParseCountsUnusableEvents: one odd event does not cost the others.
func TestParseCountsUnusableEvents(t *testing.T) {
	body := `{"eventType":"com.okta.event_hook","eventId":"x","data":{"events":[
		{"uuid":"ok","eventType":"group.profile.update","target":[{"id":"00g1","type":"UserGroup"},null]},
		{"eventType":"group.profile.update"},
		{"uuid":"no-type"},
		"a string",
		7,
		null,
		{"uuid":"bad-target","eventType":"group.profile.update","target":"00g1"},
		{"uuid":"bad-time","eventType":"group.profile.update","published":"yesterday"}
	]}}`
	d, err := hooks.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 2 || d.Events[0].UUID != "ok" || d.Events[1].UUID != "bad-time" || d.Invalid != 6 {
		t.Fatalf("events %+v, invalid %d", d.Events, d.Invalid)
	}
	if len(d.Events[0].Targets) != 1 || !d.Events[1].Published.IsZero() || !d.EventTime.IsZero() {
		t.Fatalf("events %+v", d.Events)
	}
}

// FuzzParse checks that Parse never panics, that what it accepts is a
// delivery (envelope type and id set, every event with uuid and type), and
// that a delivery rebuilt from its result parses to the same events. The
// seed corpus runs with go test; to search further:
//
//	go test -fuzz=FuzzParse -fuzztime=5s ./services/sync/internal/hooks
func FuzzParse(f *testing.F) {
	f.Add([]byte(simDelivery))
	f.Add([]byte(`{"eventType":"com.okta.event_hook","eventId":"x","data":{"events":[]}}`))
	f.Add([]byte(`{"eventType":"com.okta.event_hook","eventId":"x","data":{"events":[{"uuid":"u","eventType":"t","target":[null,{"id":1}]}]}}`))
	f.Add([]byte(`{"eventType":"com.okta.event_hook","eventId":"\u0000","data":{"events":[7,"s",null,{"uuid":"\ud800","eventType":"\u2028"}]}}`))
	f.Add([]byte(`{"verification":"abc"}`))
	f.Add([]byte(` {"eventType":"com.okta.event_hook","eventId":"x","eventTime":"2026-13-01T00:00:00Z","data":{"events":[{}]}} `))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := hooks.Parse(body)
		if err != nil {
			if !errors.Is(err, hooks.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if d.EventType != hooks.HookEventType || d.EventID == "" || d.Invalid < 0 {
			t.Fatalf("accepted %+v", d)
		}
		for _, e := range d.Events {
			if e.UUID == "" || e.EventType == "" {
				t.Fatalf("accepted an event without uuid or type: %+v", e)
			}
			// Mapping any accepted event must not panic either.
			for _, tg := range hooks.Targets(e) {
				if tg.GetId() == "" {
					t.Fatalf("target without id from %+v", e)
				}
			}
		}
		again, err := hooks.Parse(rebuild(t, d))
		if err != nil {
			t.Fatalf("rebuilt delivery refused: %v", err)
		}
		if fmt.Sprint(again.Events) != fmt.Sprint(d.Events) || again.EventID != d.EventID {
			t.Fatalf("round trip changed the delivery:\n%+v\n%+v", d, again)
		}
	})
}

// rebuild renders a parsed delivery as JSON again.
func rebuild(t *testing.T, d hooks.Delivery) []byte {
	type ev struct {
		UUID           string        `json:"uuid"`
		Published      string        `json:"published,omitempty"`
		EventType      string        `json:"eventType"`
		DisplayMessage string        `json:"displayMessage"`
		Actor          hooks.Actor   `json:"actor"`
		Target         []hooks.Actor `json:"target"`
		Outcome        hooks.Outcome `json:"outcome"`
	}
	evs := make([]ev, 0, len(d.Events))
	for _, e := range d.Events {
		var pub string
		if !e.Published.IsZero() {
			pub = e.Published.Format(time.RFC3339Nano)
		}
		evs = append(evs, ev{e.UUID, pub, e.EventType, e.DisplayMessage, e.Actor, e.Targets, e.Outcome})
	}
	b, err := json.Marshal(map[string]any{"eventType": d.EventType, "eventId": d.EventID, "data": map[string]any{"events": evs}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "{") {
		t.Fatalf("rebuilt %s", b)
	}
	return b
}
