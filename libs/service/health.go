package service

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Health tracks whether the process is ready to serve. Components register
// before they start and report when they are ready; checks run on each probe.
type Health struct {
	mu       sync.Mutex
	pending  map[string]string
	checks   map[string]func(context.Context) error
	stopping bool
}

// NewHealth returns a Health with nothing registered (ready).
func NewHealth() *Health {
	return &Health{pending: map[string]string{}, checks: map[string]func(context.Context) error{}}
}

// Register marks a component as not ready yet.
func (h *Health) Register(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending[name] = "starting"
}

// SetReady reports a component ready (err nil) or not ready with the reason.
func (h *Health) SetReady(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.pending, name)
		return
	}
	h.pending[name] = err.Error()
}

// AddCheck adds a check run on every readiness probe (for example a ping).
func (h *Health) AddCheck(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// ShuttingDown makes the process report not ready from now on, so that load
// balancers stop sending work while it drains.
func (h *Health) ShuttingDown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
}

// Problems returns what keeps the process from being ready, by component.
func (h *Health) Problems(ctx context.Context) map[string]string {
	h.mu.Lock()
	problems := make(map[string]string, len(h.pending))
	for k, v := range h.pending {
		problems[k] = v
	}
	if h.stopping {
		problems["process"] = "shutting down"
	}
	checks := make(map[string]func(context.Context) error, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for name, check := range checks {
		if err := check(ctx); err != nil {
			problems[name] = err.Error()
		}
	}
	return problems
}

// Mount adds /healthz (the process is alive) and /readyz (ready for work,
// or 503 with the reasons) to mux.
func (h *Health) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems := h.Problems(r.Context())
		if len(problems) == 0 {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		names := make([]string, 0, len(problems))
		for k := range problems {
			names = append(names, k)
		}
		sort.Strings(names)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "waiting_for": names, "reasons": problems})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
