package okta

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// PollLogs reads one page of the System Log the way Okta says to poll it:
// ascending, without until, following the rel="next" link that every
// answer carries, even an empty one. cursor is the link PollLogs returned
// last time; "" starts after since. It returns the page's events and the
// cursor to poll next (the same cursor when Okta sent no link).
func (c *Client) PollLogs(ctx context.Context, cursor string, since time.Time) ([]LogEvent, string, error) {
	const op = "poll the System Log"
	path := cursor
	if path == "" {
		q := url.Values{"limit": {strconv.Itoa(maxLogsPage)}, "since": {oktaTime(since)}, "sortOrder": {"ASCENDING"}}
		path = withQuery("/api/v1/logs", q)
	}
	re := c.sdk.CloneRequestExecutor()
	req, err := re.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return nil, cursor, fmt.Errorf("%s: build request: %w", op, err)
	}
	var page []wireLogEvent
	resp, err := re.Do(ctx, req, &page)
	if err != nil {
		return nil, cursor, fail(ctx, op, err)
	}
	events := make([]LogEvent, 0, len(page))
	for _, w := range page {
		events = append(events, w.event())
	}
	next := path
	if resp != nil && resp.HasNextPage() {
		if next, err = c.sameOrgPath(resp.NextPage); err != nil {
			return nil, cursor, fmt.Errorf("%s: %w", op, err)
		}
	}
	return events, next, nil
}
