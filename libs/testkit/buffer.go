package testkit

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it, safely from many goroutines at
// once: the sink of a test's logger, whose lines the test then reads with
// String (for example to check that no secret was logged).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
