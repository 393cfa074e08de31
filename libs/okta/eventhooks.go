package okta

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/accessbus/accessbus/libs/telemetry"
)

// EventHook is an Okta event hook as accessbus manages it.
type EventHook struct {
	ID                 string
	Name               string
	Status             string // ACTIVE or INACTIVE
	VerificationStatus string // VERIFIED or UNVERIFIED
	URI                string
	EventTypes         []string
	Created            time.Time
	LastUpdated        time.Time
}

// EventHookSpec is what CreateEventHook registers.
type EventHookSpec struct {
	Name       string
	URI        string
	EventTypes []string
	// Secret is sent by Okta in the Authorization header of every delivery.
	Secret telemetry.Secret
}

// wireEventHook is Okta's event hook JSON. The auth scheme's value is
// write-only: Okta never returns it.
type wireEventHook struct {
	ID                 string     `json:"id,omitempty"`
	Name               string     `json:"name"`
	Status             string     `json:"status,omitempty"`
	VerificationStatus string     `json:"verificationStatus,omitempty"`
	Created            *time.Time `json:"created,omitempty"`
	LastUpdated        *time.Time `json:"lastUpdated,omitempty"`
	Events             struct {
		Type  string   `json:"type"`
		Items []string `json:"items"`
	} `json:"events"`
	Channel struct {
		Type    string `json:"type"`
		Version string `json:"version"`
		Config  struct {
			URI        string `json:"uri"`
			AuthScheme *struct {
				Type  string `json:"type"`
				Key   string `json:"key"`
				Value string `json:"value,omitempty"`
			} `json:"authScheme,omitempty"`
		} `json:"config"`
	} `json:"channel"`
}

func (w wireEventHook) hook() EventHook {
	h := EventHook{ID: w.ID, Name: w.Name, Status: w.Status, VerificationStatus: w.VerificationStatus,
		URI: w.Channel.Config.URI, EventTypes: w.Events.Items}
	if w.Created != nil {
		h.Created = *w.Created
	}
	if w.LastUpdated != nil {
		h.LastUpdated = *w.LastUpdated
	}
	return h
}

// CreateEventHook registers an event hook; Okta delivers to it once it is
// ACTIVE and VERIFIED (its one-time challenge answered). A token whose role may not manage
// event hooks gets ErrPermissionDenied.
func (c *Client) CreateEventHook(ctx context.Context, spec EventHookSpec) (EventHook, error) {
	var body wireEventHook
	body.Name = spec.Name
	body.Events.Type = "EVENT_TYPE"
	body.Events.Items = spec.EventTypes
	body.Channel.Type, body.Channel.Version = "HTTP", "1.0.0"
	body.Channel.Config.URI = spec.URI
	body.Channel.Config.AuthScheme = &struct {
		Type  string `json:"type"`
		Key   string `json:"key"`
		Value string `json:"value,omitempty"`
	}{Type: "HEADER", Key: "Authorization", Value: spec.Secret.Reveal()}
	var out wireEventHook
	if err := doJSON(ctx, c, "create event hook", http.MethodPost, "/api/v1/eventHooks", body, &out); err != nil {
		return EventHook{}, err
	}
	return out.hook(), nil
}

// GetEventHook reads an event hook.
func (c *Client) GetEventHook(ctx context.Context, id string) (EventHook, error) {
	var out wireEventHook
	if err := getJSON(ctx, c, "get event hook "+id, "/api/v1/eventHooks/"+url.PathEscape(id), &out); err != nil {
		return EventHook{}, err
	}
	return out.hook(), nil
}

// ActivateEventHook activates an event hook.
func (c *Client) ActivateEventHook(ctx context.Context, id string) (EventHook, error) {
	return c.hookAction(ctx, id, "activate")
}

// DeactivateEventHook deactivates an event hook (Okta deletes only inactive hooks).
func (c *Client) DeactivateEventHook(ctx context.Context, id string) (EventHook, error) {
	return c.hookAction(ctx, id, "deactivate")
}

// VerifyEventHook asks Okta to send the hook's one-time verification
// challenge to its URI; the hook is VERIFIED when the receiver answered.
func (c *Client) VerifyEventHook(ctx context.Context, id string) (EventHook, error) {
	return c.hookAction(ctx, id, "verify")
}

func (c *Client) hookAction(ctx context.Context, id, action string) (EventHook, error) {
	var out wireEventHook
	if err := doJSON(ctx, c, action+" event hook "+id, http.MethodPost, "/api/v1/eventHooks/"+url.PathEscape(id)+"/lifecycle/"+action, nil, &out); err != nil {
		return EventHook{}, err
	}
	return out.hook(), nil
}

// DeleteEventHook deletes an inactive event hook.
func (c *Client) DeleteEventHook(ctx context.Context, id string) error {
	return doJSON(ctx, c, "delete event hook "+id, http.MethodDelete, "/api/v1/eventHooks/"+url.PathEscape(id), nil, nil)
}
