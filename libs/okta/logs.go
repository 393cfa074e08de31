package okta

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxLogsPage is the System Log's maximum page size.
const maxLogsPage = 1000

// LogEvent is one System Log event, with what a sync needs of it.
type LogEvent struct {
	UUID      string
	Published time.Time
	EventType string
	Targets   []LogTarget
	// Outcome is the event's outcome.result: SUCCESS, FAILURE, SKIPPED, ...
	Outcome string
}

// LogTarget is one target of a LogEvent: Type is User, UserGroup,
// AppInstance, AppUser, CUSTOM_ROLE, RESOURCE_SET, ...
type LogTarget struct {
	ID          string
	Type        string
	AlternateID string
	DisplayName string
}

// ListLogsOptions select the events ListLogs returns.
type ListLogsOptions struct {
	// Since and Until bound published (Since exclusive); both required, so
	// the query is bounded and its paging ends when the results do.
	Since, Until time.Time
	// Filter is a System Log filter expression, such as
	// `eventType sw "group."`; empty for every event.
	Filter string
}

// ListLogs pages through the System Log events published in (Since,
// Until], oldest first, calling fn with each page. A token that may not
// read the System Log gets ErrPermissionDenied.
func (c *Client) ListLogs(ctx context.Context, opts ListLogsOptions, fn func([]LogEvent) error) error {
	q := url.Values{
		"limit":     {strconv.Itoa(maxLogsPage)},
		"since":     {oktaTime(opts.Since)},
		"until":     {oktaTime(opts.Until)},
		"sortOrder": {"ASCENDING"},
	}
	if opts.Filter != "" {
		q.Set("filter", opts.Filter)
	}
	return listLinkPaged(ctx, c, "list System Log events", withQuery("/api/v1/logs", q), wireLogEvent.event, fn)
}

type wireLogEvent struct {
	UUID      string    `json:"uuid"`
	Published time.Time `json:"published"`
	EventType string    `json:"eventType"`
	Target    []struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		AlternateID string `json:"alternateId"`
		DisplayName string `json:"displayName"`
	} `json:"target"`
	Outcome struct {
		Result string `json:"result"`
	} `json:"outcome"`
}

func (w wireLogEvent) event() LogEvent {
	ev := LogEvent{UUID: w.UUID, Published: w.Published, EventType: w.EventType, Outcome: w.Outcome.Result}
	for _, t := range w.Target {
		ev.Targets = append(ev.Targets, LogTarget{ID: t.ID, Type: t.Type, AlternateID: t.AlternateID, DisplayName: t.DisplayName})
	}
	return ev
}

// meAt returns the token's owner and Okta's clock as the answer's Date
// header says it, to whole seconds.
func (c *Client) meAt(ctx context.Context) (User, time.Time, error) {
	const op = "get token owner"
	re := c.sdk.CloneRequestExecutor()
	req, err := re.NewRequest(http.MethodGet, "/api/v1/users/me", nil)
	if err != nil {
		return User{}, time.Time{}, fmt.Errorf("%s: build request: %w", op, err)
	}
	var w wireUser
	resp, err := re.Do(ctx, req, &w)
	if err != nil {
		return User{}, time.Time{}, fail(ctx, op, err)
	}
	var at time.Time
	if resp != nil && resp.Response != nil {
		// A missing or bad Date leaves it zero: callers then read in full.
		at, _ = http.ParseTime(resp.Header.Get("Date"))
	}
	return w.user(), at, nil
}
