package oktasim

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServeLargeOrgPages measures list pages per second of the large
// org at their maximum page sizes (users 200, group members 1000, app users
// 500, groups 10000 are too few to matter), over real HTTP with rate limits
// off, with as many concurrent clients as a full sync uses. Set
// OKTASIM_BENCH_PROFILE=medium for a quicker run.
func BenchmarkServeLargeOrgPages(b *testing.B) {
	profile := os.Getenv("OKTASIM_BENCH_PROFILE")
	if profile == "" {
		profile = "large"
	}
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	org := NewOrg(base, NewClock(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), 1))
	start := time.Now()
	gen, err := Generate(org, profile, 1)
	if err != nil {
		b.Fatal(err)
	}
	genTime := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	srv := NewServer(org, Options{RateLimits: NoLimits})
	hs.Config.Handler = srv
	hs.Start()
	defer hs.Close()
	defer srv.Close()

	// Page URLs: first pages of many groups' members and apps' users, and
	// user pages through the whole directory via their next links.
	var urls []string
	org.mu.RLock()
	org.groups.each(func(id string, g *Group) bool {
		if g.members.len() >= 1000 {
			urls = append(urls, "/api/v1/groups/"+id+"/users?limit=1000")
		}
		return len(urls) < 200
	})
	n := len(urls)
	org.apps.each(func(id string, a *App) bool {
		if a.users.len() >= 500 {
			urls = append(urls, "/api/v1/apps/"+id+"/users?limit=500")
		}
		return len(urls) < n+200
	})
	org.mu.RUnlock()
	for i := range 200 {
		urls = append(urls, fmt.Sprintf("/api/v1/users?limit=200&after=%s", encodeCursor(uint64(i*200))))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fetch := func(path string) error {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "SSWS "+gen.Tokens.SuperAdmin)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %d", path, resp.StatusCode)
		}
		return nil
	}
	var next atomic.Int64
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := fetch(urls[int(i)%len(urls)]); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pages/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(genTime.Seconds(), "generate-s")
}
