package broker

import (
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/gregorhq/gregor/internal/config"
)

// socket.send.buffer.bytes and socket.receive.buffer.bytes set SO_SNDBUF
// and SO_RCVBUF on a client connection; -1 leaves the OS's buffers.
func TestSocketBuffers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func() *net.TCPConn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc.(*net.TCPConn)
	}
	bufs := func(tc *net.TCPConn) (snd, rcv int) {
		t.Helper()
		raw, err := tc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var e1, e2 error
		raw.Control(func(fd uintptr) {
			snd, e1 = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
			rcv, e2 = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		})
		if e1 != nil || e2 != nil {
			t.Fatal(e1, e2)
		}
		return snd, rcv
	}
	osSnd, osRcv := bufs(accept())

	cfg, err := config.NewLoader().Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SocketSendBufferBytes != 102400 || cfg.SocketReceiveBufferBytes != -1 {
		t.Fatalf("defaults: send %d receive %d, want 102400 and -1", cfg.SocketSendBufferBytes, cfg.SocketReceiveBufferBytes)
	}
	b := &Broker{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	tc := accept()
	b.setSocketBuffers(tc)
	// Linux doubles what is set, for its bookkeeping.
	if snd, rcv := bufs(tc); snd != 2*102400 || rcv != osRcv {
		t.Errorf("defaults: SO_SNDBUF %d SO_RCVBUF %d, want %d and the OS's %d", snd, rcv, 2*102400, osRcv)
	}

	cfg.SocketSendBufferBytes, cfg.SocketReceiveBufferBytes = -1, 65536
	tc = accept()
	b.setSocketBuffers(tc)
	if snd, rcv := bufs(tc); snd != osSnd || rcv != 2*65536 {
		t.Errorf("-1 and 65536: SO_SNDBUF %d SO_RCVBUF %d, want the OS's %d and %d", snd, rcv, osSnd, 2*65536)
	}
}
