package broker

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorhq/gregor/internal/config"
)

func newTestBroker(tb testing.TB) *Broker {
	tb.Helper()
	return newTestBrokerLog(tb, slog.New(slog.DiscardHandler))
}

// newTestBrokerLog is newTestBroker logging to log.
func newTestBrokerLog(tb testing.TB, log *slog.Logger) *Broker {
	tb.Helper()
	ld := config.NewLoader()
	ld.Set("log.dirs", tb.TempDir(), config.SourceFlag)
	ld.Set("listeners", "PLAINTEXT://127.0.0.1:0", config.SourceFlag)
	ld.Set("group.initial.rebalance.delay.ms", "0", config.SourceFlag)
	cfg, err := ld.Resolve()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	if err := b.Start(); err != nil {
		tb.Fatal(err)
	}
	return b
}

// exchange runs one connection over a pipe: it writes in, closes, and
// returns what the broker answered before closing its side.
func exchange(b *Broker, in []byte) []byte {
	client, server := net.Pipe()
	c := newConn(b, server, "PLAINTEXT", onBroker)
	done := make(chan struct{})
	go func() {
		c.serve()
		close(done)
	}()
	go func() {
		client.Write(in)
		// Half-close is not available on a pipe: a short pause lets the
		// reader take the frames, then stopReading ends the connection.
		time.Sleep(time.Millisecond)
		c.stopReading()
	}()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(client)
	client.Close()
	<-done
	return out
}

func request(key, version int16, body kmsg.Request) []byte {
	body.SetVersion(version)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, body, 1)
}

// FuzzRequest sends arbitrary frames through a real connection and
// handlers: the broker must never panic (a panic in a handler would be
// recovered and close the connection, so this also checks handlers do not
// panic: recovered panics are logged at Error and fail the test).
func FuzzRequest(f *testing.F) {
	seeds := []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(),
		kmsg.NewPtrMetadataRequest(),
		kmsg.NewPtrCreateTopicsRequest(),
		kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(),
		kmsg.NewPtrListOffsetsRequest(),
		kmsg.NewPtrJoinGroupRequest(),
		kmsg.NewPtrOffsetCommitRequest(),
		kmsg.NewPtrDescribeConfigsRequest(),
	}
	for _, r := range seeds {
		for _, v := range []int16{0, 3, r.MaxVersion()} {
			if v <= r.MaxVersion() {
				f.Add(request(r.Key(), v, r))
			}
		}
	}
	panics := &panicCounter{}
	b := newTestBrokerLog(f, slog.New(panics))
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
		exchange(b, append(in, frame...))
		if n := panics.count(); n > 0 {
			t.Fatalf("a handler panicked (%d)", n)
		}
	})
}
