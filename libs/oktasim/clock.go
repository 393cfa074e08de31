package oktasim

import (
	"sync"
	"time"
)

// Clock is the simulator's time. With a scale N it runs N times faster than
// the wall clock from its start, so a 60 s rate-limit window lasts 60/N real
// seconds while Date, X-Rate-Limit-Reset, published and lastUpdated stay
// consistent with each other.
type Clock struct {
	mu        sync.Mutex
	scale     float64
	wallStart time.Time
	simStart  time.Time
	fixed     bool
	now       time.Time
}

// NewClock returns a clock starting at start and running scale times faster
// than real time (scale 1 is real time; values below 1 are taken as 1).
func NewClock(start time.Time, scale float64) *Clock {
	if scale < 1 {
		scale = 1
	}
	return &Clock{scale: scale, wallStart: time.Now(), simStart: start}
}

// Now returns the simulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return c.now
	}
	elapsed := time.Since(c.wallStart)
	return c.simStart.Add(time.Duration(float64(elapsed) * c.scale))
}

// Scale is how many simulated seconds pass per real second.
func (c *Clock) Scale() float64 { return c.scale }

// Real converts a simulated duration into the real time it takes.
func (c *Clock) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.scale)
}
