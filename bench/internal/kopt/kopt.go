// Package kopt turns the benchmark tools' producer flags into franz-go
// options, so bench/e2e and bench/load agree on what "-acks 1" means.
package kopt

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Acks returns the options for acks "0", "1" or "all" (also "-1").
//
// franz-go's idempotent producer needs acks=all and allows at most one
// produce request in flight per broker of its own choosing (five on current
// brokers), so idempotence is used only for acks=all with idempotent set.
// Otherwise the producer is not idempotent and maxInflight (at least 1)
// bounds the produce requests in flight per broker; with idempotence,
// maxInflight is ignored and reported back as 0 in the returned value.
func Acks(acks string, idempotent bool, maxInflight int) ([]kgo.Opt, int, error) {
	var a kgo.Acks
	switch acks {
	case "0":
		a = kgo.NoAck()
	case "1":
		a = kgo.LeaderAck()
	case "all", "-1":
		a = kgo.AllISRAcks()
		if idempotent {
			return []kgo.Opt{kgo.RequiredAcks(a)}, 0, nil
		}
	default:
		return nil, 0, fmt.Errorf("acks %q: want 0, 1 or all", acks)
	}
	if maxInflight < 1 {
		return nil, 0, fmt.Errorf("max in-flight %d: want at least 1", maxInflight)
	}
	return []kgo.Opt{kgo.RequiredAcks(a), kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(maxInflight)}, maxInflight, nil
}

// Compression returns the batch compression option for none, gzip, snappy,
// lz4 or zstd. The tools default to none, like the Java producer (franz-go's
// own default is snappy).
func Compression(name string) (kgo.Opt, error) {
	var c kgo.CompressionCodec
	switch name {
	case "none", "":
		c = kgo.NoCompression()
	case "gzip":
		c = kgo.GzipCompression()
	case "snappy":
		c = kgo.SnappyCompression()
	case "lz4":
		c = kgo.Lz4Compression()
	case "zstd":
		c = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", name)
	}
	return kgo.ProducerBatchCompression(c), nil
}
