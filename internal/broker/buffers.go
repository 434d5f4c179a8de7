package broker

import (
	"math/bits"
	"sync"
)

// Size-classed pools of byte buffers for request frames and encoded
// responses. Under load nearly every byte the broker allocates is a frame
// (a produce request) or an encoded fetch response; recycling them keeps
// the garbage collector out of the request path. Classes are powers of two
// from 4 KiB to 64 MiB; larger buffers are not pooled.
const (
	minBufClass = 12 // 4 KiB
	maxBufClass = 26 // 64 MiB
)

var bufPools [maxBufClass + 1]sync.Pool

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
	if v := bufPools[c].Get(); v != nil {
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
	bufPools[bits.Len(uint(c))-1].Put(bp)
}
