package okta

import "testing"

// TestBodyBuffers: a buffer always holds what it is asked for, and one given
// back serves only requests it can hold.
func TestBodyBuffers(t *testing.T) {
	sizes := []int{0, 512, minPooledBody/2 - 1, minPooledBody / 2, minPooledBody, minPooledBody + 1, 300 << 10, 1 << 20, 8 << 20, 8<<20 + 1, 20 << 20}
	for _, n := range sizes {
		for range 3 {
			b := bodyBuffer(n)
			if len(b) != 0 || cap(b) < n {
				t.Fatalf("bodyBuffer(%d): len %d cap %d", n, len(b), cap(b))
			}
			releaseBody(append(b, make([]byte, n)...))
		}
	}
	// Buffers grown between two classes go to the smaller one.
	releaseBody(make([]byte, 0, 3*minPooledBody))
	for _, n := range sizes {
		if b := bodyBuffer(n); cap(b) < n {
			t.Fatalf("bodyBuffer(%d) after odd releases: cap %d", n, cap(b))
		}
	}
}
