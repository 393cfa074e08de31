package okta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// listLinkPaged GETs path and follows the Link rel="next" headers through
// the SDK (resp.HasNextPage / resp.Next), decoding each page as []W and
// handing it to fn converted. A callback error stops the listing and is
// returned as is.
func listLinkPaged[W, T any](ctx context.Context, c *Client, op, path string, conv func(W) T, fn func([]T) error) error {
	return linkPaged(ctx, c, op, path, func(body []byte) ([]T, error) { return decodeWire(body, conv) }, fn)
}

// linkPaged is the paging of listLinkPaged with the decoding of a page
// left to decode: the transport hands it each page's body (rawBody), and
// the SDK, which builds the requests and follows the Link headers, decodes
// an empty array, so a page is decoded once, by one pass of its own. Each
// page handed to fn is a slice of its own, which fn may keep.
func linkPaged[T any](ctx context.Context, c *Client, op, path string, decode func([]byte) ([]T, error), fn func([]T) error) error {
	rb := &rawBody{}
	ctx = context.WithValue(ctx, rawBodyKey{}, rb)
	// A clone per listing: NewRequest and Do mutate the executor.
	re := c.sdk.CloneRequestExecutor()
	req, err := re.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("%s: build request: %w", op, err)
	}
	var none []struct{}
	resp, err := re.Do(ctx, req, &none)
	prev := path
	for {
		if err != nil {
			return fail(ctx, op, err)
		}
		page, err := decode(rb.body)
		// The decoders copy what they keep: the page's buffer serves the
		// next one.
		releaseBody(rb.body)
		rb.body = nil
		if err != nil {
			return fmt.Errorf("%s: decode page: %w", op, err)
		}
		if err := fn(page); err != nil {
			return err
		}
		if !resp.HasNextPage() {
			return nil
		}
		if resp.NextPage == prev {
			return fmt.Errorf("%s: next page link repeats %s: %w", op, prev, ErrTransient)
		}
		prev = resp.NextPage
		none = nil
		resp, err = resp.Next(ctx, &none)
	}
}

// iamLinks is the body paging of /api/v1/iam/*.
type iamLinks struct {
	Next *struct {
		Href string `json:"href"`
	} `json:"next"`
}

// listBodyPaged GETs path and follows _links.next.href in the body, the
// paging of /api/v1/iam/*, through the SDK's request executor; the items
// are under key.
func listBodyPaged[W, T any](ctx context.Context, c *Client, op, path, key string, conv func(W) T, fn func([]T) error) error {
	seen := map[string]bool{}
	for path != "" {
		if seen[path] {
			return fmt.Errorf("%s: next page link repeats %s: %w", op, path, ErrTransient)
		}
		seen[path] = true
		re := c.sdk.CloneRequestExecutor()
		req, err := re.NewRequest(http.MethodGet, path, nil)
		if err != nil {
			return fmt.Errorf("%s: build request: %w", op, err)
		}
		var body map[string]json.RawMessage
		if _, err := re.Do(ctx, req, &body); err != nil {
			return fail(ctx, op, err)
		}
		var page []W
		if raw, ok := body[key]; ok {
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("%s: decode %q: %w", op, key, err)
			}
		}
		out := make([]T, 0, len(page))
		for _, w := range page {
			out = append(out, conv(w))
		}
		if err := fn(out); err != nil {
			return err
		}
		var links iamLinks
		if raw, ok := body["_links"]; ok {
			if err := json.Unmarshal(raw, &links); err != nil {
				return fmt.Errorf("%s: decode _links: %w", op, err)
			}
		}
		path = ""
		if links.Next != nil && links.Next.Href != "" {
			if path, err = c.sameOrgPath(links.Next.Href); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
	}
	return nil
}

// sameOrgPath turns an absolute href of the org into path?query; an href
// to another host is refused, since the request would carry the token.
func (c *Client) sameOrgPath(href string) (string, error) {
	u, err := url.Parse(href)
	if err != nil {
		return "", fmt.Errorf("next link %q: %w", href, err)
	}
	org, _ := url.Parse(c.orgURL)
	if u.Host != "" && (u.Host != org.Host || u.Scheme != org.Scheme) {
		return "", fmt.Errorf("next link %q leaves the org %s: %w", href, c.orgURL, ErrInvalidInput)
	}
	return u.RequestURI(), nil
}

// getJSON GETs path into v through the SDK's request executor.
func getJSON(ctx context.Context, c *Client, op, path string, v any) error {
	return doJSON(ctx, c, op, http.MethodGet, path, nil, v)
}

func doJSON(ctx context.Context, c *Client, op, method, path string, body, v any) error {
	re := c.sdk.CloneRequestExecutor()
	req, err := re.NewRequest(method, path, body)
	if err != nil {
		return fmt.Errorf("%s: build request: %w", op, err)
	}
	if _, err := re.Do(ctx, req, v); err != nil {
		return fail(ctx, op, err)
	}
	return nil
}

// listIDsLinkPaged is listLinkPaged for a list of which only each object's
// id is needed: idsOf reads the ids out of each page without decoding the
// objects.
func listIDsLinkPaged(ctx context.Context, c *Client, op, path string, fn func([]string) error) error {
	return linkPaged(ctx, c, op, path, idsOf, fn)
}
