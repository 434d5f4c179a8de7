// Package kpoll holds what several bench commands do with a broker the
// same way: poll a franz-go consumer until told to stop, and wait until a
// broker's address is free.
package kpoll

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Drain polls cl until ctx ends, adding the records it reads to n, and
// returns the first fetch error other than ctx's cancellation (nil when
// ctx ended).
func Drain(ctx context.Context, cl *kgo.Client, n *atomic.Int64) error {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		n.Add(int64(fs.NumRecords()))
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// AddrFree reports whether addr can be bound, i.e. no broker is there.
func AddrFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
