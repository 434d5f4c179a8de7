package broker

import "testing"

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
