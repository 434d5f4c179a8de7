package broker

import (
	"math/bits"
	"sync"
	"time"
)

// Size-classed pools of byte buffers for request frames and encoded
// responses. Under load nearly every byte the broker allocates is a frame
// (a produce request) or an encoded fetch response; recycling them keeps
// the garbage collector out of the request path. Classes are powers of two
// from 4 KiB to 64 MiB; larger buffers are not pooled.
//
// Small classes (below 1 MiB) use a sync.Pool each. Large ones use one
// shared free list: a sync.Pool holds a buffer per P and drops everything
// after two garbage collections, so a burst of large frames (or a client
// sending 10 MB bombs) would be allocated again and again, with the
// garbage inflating RSS, while a free list reuses them. It keeps at most
// maxRetained bytes, enough for the large frames four producers keep in
// flight (with 32 MiB, half of them missed it: 2 GB of garbage in 21 s
// and twice the peak RSS). What a burst leaves behind is trimmed:
// trimBuffers, every trimEvery, releases what sat unused in the list for
// the whole interval (its low-water mark), down to floorRetained.
const (
	minBufClass   = 12 // 4 KiB
	minLargeClass = 20 // 1 MiB
	maxBufClass   = 26 // 64 MiB

	maxRetained   = 256 << 20
	floorRetained = 32 << 20
	trimEvery     = 10 * time.Second
)

var bufPools [minLargeClass]sync.Pool

// large is the free list of the classes from minLargeClass up. mu is a
// leaf lock.
var large struct {
	mu       sync.Mutex
	free     [maxBufClass + 1][]*[]byte
	retained int       // bytes of capacity in free
	lowWater int       // the least retained since the last trim
	lastTrim time.Time // when trimBuffers last ran
}

func bufClass(n int) int {
	if n <= 1<<minBufClass {
		return minBufClass
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns a buffer of length n.
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if c > maxBufClass {
		b := make([]byte, n)
		return &b
	}
	if c >= minLargeClass {
		large.mu.Lock()
		if l := len(large.free[c]); l > 0 {
			bp := large.free[c][l-1]
			large.free[c][l-1] = nil
			large.free[c] = large.free[c][:l-1]
			large.retained -= cap(*bp)
			large.lowWater = min(large.lowWater, large.retained)
			large.mu.Unlock()
			*bp = (*bp)[:n]
			return bp
		}
		large.mu.Unlock()
	} else if v := bufPools[c].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// putBuf recycles a buffer; it must not be used afterwards. A buffer goes
// to the largest class its capacity covers, so getBuf (which rounds up)
// always finds enough room, whatever capacity append grew it to.
func putBuf(bp *[]byte) {
	c := cap(*bp)
	if c < 1<<minBufClass || c > 1<<(maxBufClass+1)-1 {
		return // too small to matter, or too big to keep
	}
	*bp = (*bp)[:0]
	class := bits.Len(uint(c)) - 1
	if class < minLargeClass {
		bufPools[class].Put(bp)
		return
	}
	large.mu.Lock()
	defer large.mu.Unlock()
	if large.retained+c > maxRetained {
		return // left to the garbage collector
	}
	large.free[class] = append(large.free[class], bp)
	large.retained += c
}

// trimBuffers releases, at most once per trimEvery, the large buffers that
// sat in the free list since the last trim (the low-water mark of what it
// held), largest first, down to floorRetained; the garbage collector takes
// them. The broker's housekeeping calls it every second.
func trimBuffers(now time.Time) {
	large.mu.Lock()
	defer large.mu.Unlock()
	if now.Sub(large.lastTrim) < trimEvery {
		return
	}
	large.lastTrim = now
	excess := min(large.lowWater, large.retained-floorRetained)
	for c := maxBufClass; c >= minLargeClass && excess > 0; c-- {
		for l := len(large.free[c]); l > 0 && excess > 0; l-- {
			bp := large.free[c][l-1]
			large.free[c][l-1] = nil
			large.free[c] = large.free[c][:l-1]
			large.retained -= cap(*bp)
			excess -= cap(*bp)
		}
	}
	large.lowWater = large.retained
}
