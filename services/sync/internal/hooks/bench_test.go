package hooks_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// BenchmarkReceiver measures a delivery of 10 events from the request to
// the answer, stored in an embedded JetStream, over loopback HTTP; it
// reports p50_ms and p99_ms (the target is p99 under 50 ms).
//
//	go test -run '^$' -bench Receiver ./services/sync/internal/hooks
func BenchmarkReceiver(b *testing.B) {
	e := newEnv(b, hooks.ReceiverOptions{})
	bodies := make([][]byte, 0, 1024)
	for i := range cap(bodies) {
		var evs []ev
		for j := range 10 {
			evs = append(evs, membershipEvent(fmt.Sprintf("b%d-%d", i, j), "group.user_membership.add", "00g1", fmt.Sprintf("00u%d", j)))
		}
		bodies = append(bodies, evs2delivery(b, i, evs))
	}
	client := e.srv.Client()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new eventId per request, so that the stream stores each one.
		body := bytes.Replace(bodies[i%len(bodies)], []byte(`"eventId":"x`), fmt.Appendf(nil, `"eventId":"%d-`, i), 1)
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+hooks.PathPrefix+"c1", bytes.NewReader(body))
		req.Header.Set("Authorization", hookSecret)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50_ms")
	b.ReportMetric(ms(0.99), "p99_ms")
}

func evs2delivery(b *testing.B, i int, evs []ev) []byte {
	return delivery(b, fmt.Sprintf("x%d", i), evs...)
}
