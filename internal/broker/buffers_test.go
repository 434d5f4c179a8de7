package broker

import (
	"testing"
	"time"
)

func TestBufPoolsRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 4097, 1 << 20, 3<<20 + 5, 64 << 20} {
		bp := getBuf(n)
		if len(*bp) != n || cap(*bp) < n {
			t.Fatalf("getBuf(%d): len %d cap %d", n, len(*bp), cap(*bp))
		}
		*bp = append(*bp, make([]byte, n/3)...) // grow like an encoder would
		putBuf(bp)
		again := getBuf(n)
		if len(*again) != n || cap(*again) < n {
			t.Fatalf("reused buffer for %d: len %d cap %d", n, len(*again), cap(*again))
		}
		putBuf(again)
	}
}

func BenchmarkFrameBuffers(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bp := getBuf(1 << 20)
		putBuf(bp)
	}
}

// resetLarge empties the large-buffer free list (package state shared by
// every broker in the process) for a test, and again after it.
func resetLarge(t *testing.T) {
	reset := func() {
		large.mu.Lock()
		large.free = [maxBufClass + 1][]*[]byte{}
		large.retained, large.lowWater, large.lastTrim = 0, 0, time.Time{}
		large.mu.Unlock()
	}
	reset()
	t.Cleanup(reset)
}

func retainedBytes() int {
	large.mu.Lock()
	defer large.mu.Unlock()
	return large.retained
}

// The free list keeps the large frames a few producers have in flight
// (here 12 of 8 MiB, three times what 32 MiB kept), and trimming gives
// back what sat unused for a whole interval, down to floorRetained, while
// what was drawn on stays.
func TestLargeBuffersRetainedThenTrimmed(t *testing.T) {
	resetLarge(t)
	const n, size = 12, 8 << 20
	var bufs []*[]byte
	for range n {
		bufs = append(bufs, getBuf(size))
	}
	for _, bp := range bufs {
		putBuf(bp)
	}
	if got := retainedBytes(); got != n*size {
		t.Fatalf("retained %d MiB after %d frames of 8 MiB came back, want all %d MiB", got>>20, n, n*size>>20)
	}
	t0 := time.Now()
	trimBuffers(t0) // starts an interval: nothing is known unused yet
	if got := retainedBytes(); got != n*size {
		t.Fatalf("first trim released memory: %d MiB left", got>>20)
	}
	// Busy interval: 10 of the 12 are in use at once, then come back.
	bufs = bufs[:0]
	for range 10 {
		bufs = append(bufs, getBuf(size))
	}
	for _, bp := range bufs {
		putBuf(bp)
	}
	trimBuffers(t0.Add(trimEvery / 2)) // too soon: ignored
	trimBuffers(t0.Add(trimEvery))
	if got := retainedBytes(); got != 10*size {
		t.Fatalf("after a busy interval: %d MiB retained, want the 80 MiB in use (only the 2 idle frames released)", got>>20)
	}
	// Idle interval: everything above the floor goes.
	trimBuffers(t0.Add(2 * trimEvery))
	if got := retainedBytes(); got > floorRetained || got < floorRetained-size {
		t.Fatalf("after an idle interval: %d MiB retained, want about the %d MiB floor", got>>20, floorRetained>>20)
	}
	// Still served from the list.
	bp := getBuf(size)
	if cap(*bp) != size || retainedBytes() != floorRetained-size {
		t.Fatalf("after trimming: cap %d, retained %d MiB", cap(*bp), retainedBytes()>>20)
	}
	putBuf(bp)
}
