package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// benchBatch is a ~16 KiB batch of 16 records with 1 KiB values.
func benchBatch(b *testing.B) []byte {
	sp := spec(16, 1_700_000_000_000)
	sp.valueSize = 1024
	return buildBatch(b, sp)
}

func benchLog(b *testing.B, cfg LogConfig) (*Store, *Log) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	l, err := s.Create("bench", 0, [16]byte{}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return s, l
}

// BenchmarkAppend measures one producer appending 16 KiB batches. The
// flush=1 variants fsync every append (Kafka with
// log.flush.interval.messages=1).
func BenchmarkAppend(b *testing.B) {
	for _, flush := range []bool{false, true} {
		for _, prealloc := range []bool{false, true} {
			b.Run(fmt.Sprintf("flush=%v/prealloc=%v", map[bool]string{false: "never", true: "1"}[flush], prealloc), func(b *testing.B) {
				cfg := DefaultLogConfig()
				cfg.Preallocate = prealloc
				if flush {
					cfg.FlushMessages = 1
				}
				s, l := benchLog(b, cfg)
				batch := benchBatch(b)
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := l.Append(batch); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer() // Close fsyncs everything: not part of an append
				s.Close()
			})
		}
	}
}

// BenchmarkAppendDurableParallel: many producers over 8 partitions, each
// append waiting for its fsync: the group-commit path (acks=all with
// durability).
func BenchmarkAppendDurableParallel(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { b.StopTimer(); s.Close() }()
	var logs []*Log
	for p := int32(0); p < 8; p++ {
		l, err := s.Create("bench", p, [16]byte{}, DefaultLogConfig())
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, l)
	}
	var next atomic.Int64
	b.SetBytes(int64(len(benchBatch(b))))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := benchBatch(b)
		l := logs[next.Add(1)%int64(len(logs))]
		for pb.Next() {
			res, err := l.Append(batch)
			if err == nil {
				err = l.WaitDurable(context.Background(), res.LastOffset)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRead fetches 1 MiB at random offsets of a 64 MiB log (page
// cache warm), the way a consumer catching up does.
func BenchmarkRead(b *testing.B) {
	s, l := benchLog(b, DefaultLogConfig())
	defer func() { b.StopTimer(); s.Close() }()
	batch := benchBatch(b)
	for l.Size() < 64<<20 {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	for _, mode := range []string{"Read", "ReadInto", "ReadRange"} {
		b.Run(mode, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 0, 2<<20)
			b.ReportAllocs()
			var total int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := rng.Int64N(leo)
				switch mode {
				case "Read":
					res, err := l.Read(off, 1<<20)
					if err != nil {
						b.Fatal(err)
					}
					total += int64(len(res.Records))
				case "ReadInto":
					res, err := l.ReadInto(buf, off, 1<<20)
					if err != nil {
						b.Fatal(err)
					}
					buf = res.Records
					total += int64(len(res.Records))
				case "ReadRange":
					fr, _, err := l.ReadRange(off, 1<<20)
					if err != nil {
						b.Fatal(err)
					}
					total += int64(fr.Size)
					fr.Release()
				}
			}
			b.SetBytes(total / int64(b.N))
		})
	}
}

// BenchmarkOpenEmptyPartitions is start-up of a log dir of 2,000 empty
// partitions after a clean shutdown: ns/op is one whole Open.
func BenchmarkOpenEmptyPartitions(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	for p := int32(0); p < 2000; p++ {
		if _, err := s.Create("many", p, [16]byte{1}, DefaultLogConfig()); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
