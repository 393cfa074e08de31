package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

// mailPath is where accessbus dev serves the captured mail, for
// `accessbus mail list|show --server`.
const mailPath = "/dev/mail"

// mailHandler serves the captured mail as JSON to callers with an API key:
// GET /dev/mail lists it (without bodies), GET /dev/mail/<id> gives one.
func mailHandler(store *mailcapture.Store, keys *auth.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := keys.Authenticate(r.Context(), strings.TrimSpace(key)); err != nil {
			http.Error(w, "an API key is required: Authorization: Bearer <key>", http.StatusUnauthorized)
			return
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, mailPath), "/")
		w.Header().Set("Content-Type", "application/json")
		if rest == "" {
			msgs, err := store.List(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			for i := range msgs {
				msgs[i].Raw = ""
			}
			_ = json.NewEncoder(w).Encode(msgs)
			return
		}
		id, err := strconv.ParseUint(rest, 10, 64)
		if err != nil {
			http.Error(w, "not an email id", http.StatusBadRequest)
			return
		}
		m, err := store.Get(r.Context(), id)
		if errors.Is(err, mailcapture.ErrNotFound) {
			http.Error(w, "no such email", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(m)
	})
}

// httpMail reads the captured mail through accessbus dev's HTTP server.
type httpMail struct {
	server string
	key    telemetry.Secret
}

func (h *httpMail) fetch(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.server+path, nil)
	if err != nil {
		return err
	}
	if h.key.IsSet() {
		req.Header.Set("Authorization", "Bearer "+h.key.Reveal())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("read the captured mail from %s (is accessbus dev running?): %w", h.server, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return json.NewDecoder(resp.Body).Decode(v)
	case http.StatusNotFound:
		return mailcapture.ErrNotFound
	case http.StatusUnauthorized:
		return errors.New("accessbus dev refused the API key: set ACCESSBUS_API_KEY or --data-dir to accessbus dev's data dir")
	}
	return fmt.Errorf("read the captured mail from %s: HTTP %d", h.server, resp.StatusCode)
}

func (h *httpMail) List(ctx context.Context) ([]mailcapture.Message, error) {
	var msgs []mailcapture.Message
	return msgs, h.fetch(ctx, mailPath, &msgs)
}

func (h *httpMail) Get(ctx context.Context, id uint64) (mailcapture.Message, error) {
	var m mailcapture.Message
	err := h.fetch(ctx, mailPath+"/"+strconv.FormatUint(id, 10), &m)
	return m, err
}
