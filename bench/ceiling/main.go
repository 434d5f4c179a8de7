// Command ceiling measures two limits of the machine a broker runs on,
// with no broker involved, so a benchmark can say how close a broker gets:
//
//   - loopback: plain TCP over 127.0.0.1 between two processes, as between
//     a broker and its consumer. This process (the sender) passes a cached
//     file to -streams sockets at once with sendfile, as a zero-copy fetch
//     does, each socket's send buffer set as a broker sets it (-sndbuf,
//     Kafka's socket.send.buffer.bytes, 102400; 0 for the kernel's
//     autotuning). A child process of the same binary (the receiver) asks
//     each connection for -response-bytes at a time, as a consumer's fetch
//     does, reads the answer into one buffer and drops it. The ceiling for
//     consuming a cached topic. (An endless stream with no asking, as
//     -response-bytes 0 gives, is not faster: on this 2-vCPU VM it moved
//     half as much, 2.2–2.7 GiB/s against 5, with several times the
//     context switches.)
//
//   - write: 1 MiB write calls appending to new files in -dir, through the
//     page cache, as a broker with durability=os appends its segments;
//     a new file every -file-bytes. The ceiling for produce with
//     durability=os.
//
// Usage:
//
//	go run ./bench/ceiling -mode loopback -duration 5s -streams 2
//	go run ./bench/ceiling -mode write -duration 5s -dir /tmp
//
// It prints one line, like bench/load's:
//
//	ceiling: mode=loopback bytes=... seconds=5.000 mib_per_sec=... cpu_seconds=... cpu_seconds_per_gib=...
//
// cpu_seconds is the user+system CPU of the work: the writer's, or the
// sender's and the receiver's together (each process's own rusage, from
// the moment every connection is up). The loopback mode also prints each
// side's (sender_cpu_seconds_per_gib, receiver_cpu_seconds_per_gib). On
// loopback the sender does the TCP work of both ends (the receive
// processing runs in its softirq) and the receiver the copy into user
// memory, so the sender's figure is what a broker serving a zero-copy
// fetch pays at the least. The write mode deletes its files at the end;
// the loopback mode writes a -file-bytes file of random bytes first (not
// timed) and deletes it too.
package main

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gregorhq/gregor/bench/internal/proc"
)

func main() {
	mode := flag.String("mode", "loopback", "loopback or write")
	dur := flag.Duration("duration", 5*time.Second, "how long to measure")
	dir := flag.String("dir", os.TempDir(), "directory for the files")
	fileBytes := flag.Int64("file-bytes", 1<<30, "size of the file sent (loopback) or of each file written (write)")
	chunk := flag.Int("chunk", 4<<20, "bytes per sendfile or write call")
	maxBytes := flag.Int64("max-bytes", 4<<30, "write: stop after this many bytes, even before -duration")
	streams := flag.Int("streams", 1, "loopback: connections sending at once")
	readBytes := flag.Int("read-bytes", 16<<20, "loopback: bytes per read call of the receiver with -response-bytes 0")
	sndbuf := flag.Int("sndbuf", 102400, "loopback: SO_SNDBUF of each sending socket in bytes (0: the kernel's autotuning)")
	respBytes := flag.Int("response-bytes", 16<<20, "loopback: bytes the receiver asks for at a time, as a consumer's fetch does (0: one endless stream)")
	receiverOf := flag.String("receiver-of", "", "internal: be the loopback receiver of this address")
	flag.Parse()
	if *receiverOf != "" {
		if err := receive(*receiverOf, *streams, *readBytes, *respBytes); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling receiver:", err)
			os.Exit(1)
		}
		return
	}
	var (
		n     int64
		err   error
		sides [2]time.Duration // loopback: sender, receiver
	)
	r0 := proc.SelfCPU()
	start := time.Now()
	switch *mode {
	case "loopback":
		n, err = loopback(*dir, *fileBytes, *chunk, *readBytes, *respBytes, *streams, *sndbuf, *dur, &start, &sides)
	case "write":
		n, err = write(*dir, *fileBytes, *chunk, *dur, *maxBytes)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	secs := time.Since(start).Seconds()
	cpu := proc.SelfCPU() - r0
	if *mode == "loopback" {
		cpu = sides[0] + sides[1]
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	gib := max(float64(n)/(1<<30), 1e-9)
	fmt.Printf("ceiling: mode=%s bytes=%d seconds=%.3f mib_per_sec=%.2f cpu_seconds=%.3f cpu_seconds_per_gib=%.3f",
		*mode, n, secs, float64(n)/(1<<20)/secs, cpu.Seconds(), cpu.Seconds()/gib)
	if *mode == "loopback" {
		fmt.Printf(" streams=%d sndbuf=%d sender_cpu_seconds_per_gib=%.3f receiver_cpu_seconds_per_gib=%.3f",
			*streams, *sndbuf, sides[0].Seconds()/gib, sides[1].Seconds()/gib)
	}
	fmt.Println()
}

// loopback sends a cached file over streams loopback TCP connections at
// once with sendfile for dur, to a receiver in a child process, and returns
// the bytes received and each side's CPU. The clock and the CPU counts
// start once the file is written and read back (cached) and every
// connection is up; start is set then.
func loopback(dir string, size int64, chunk, readBytes, respBytes, streams, sndbuf int, dur time.Duration, start *time.Time, sides *[2]time.Duration) (int64, error) {
	f, err := os.CreateTemp(dir, "ceiling-loopback-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	var out bytes.Buffer
	child := exec.Command(self, "-receiver-of", ln.Addr().String(), "-streams", strconv.Itoa(streams),
		"-read-bytes", strconv.Itoa(readBytes), "-response-bytes", strconv.Itoa(respBytes))
	child.Stdout, child.Stderr = &out, os.Stderr
	if err := child.Start(); err != nil {
		return 0, err
	}
	waited := false
	defer func() {
		if !waited {
			child.Process.Kill()
			child.Wait()
		}
	}()
	conns := make([]*net.TCPConn, streams)
	for i := range conns {
		c, err := ln.Accept()
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns[i] = c.(*net.TCPConn)
		if sndbuf > 0 {
			if err := conns[i].SetWriteBuffer(sndbuf); err != nil {
				return 0, err
			}
		}
	}
	// The receiver starts its count once it has dialled every connection.
	*start = time.Now()
	r0 := proc.SelfCPU()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	errs := make([]error, streams)
	for i, tc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tc.CloseWrite()
			errs[i] = sendUntil(tc, f, size, int64(i)*size/int64(streams), chunk, respBytes, deadline)
		}()
	}
	wg.Wait()
	sides[0] = proc.SelfCPU() - r0
	werr := child.Wait()
	waited = true
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, fmt.Errorf("receiver: %w", werr)
	}
	var n, ns int64
	if _, err := fmt.Sscanf(out.String(), "received=%d cpu_ns=%d", &n, &ns); err != nil {
		return 0, fmt.Errorf("receiver said %q: %w", out.String(), err)
	}
	sides[1] = time.Duration(ns)
	return n, nil
}

// sendUntil passes f to tc with sendfile, chunk bytes a call, from offset
// off round and round, until deadline; with respBytes above 0, respBytes
// at a time, each when the receiver asks for it.
func sendUntil(tc *net.TCPConn, f *os.File, size, off int64, chunk, respBytes int, deadline time.Time) error {
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var (
		sendErr error
		left    int64 = math.MaxInt64 // bytes to send before the next ask
		ask     [4]byte
	)
	if respBytes > 0 {
		left = 0
	}
	for sendErr == nil && time.Now().Before(deadline) {
		if left == 0 {
			if _, err := io.ReadFull(tc, ask[:]); err != nil {
				return err
			}
			left = int64(respBytes)
		}
		werr := raw.Write(func(fd uintptr) bool {
			for left > 0 && time.Now().Before(deadline) {
				if off >= size {
					off = 0
				}
				o := off
				k, err := syscall.Sendfile(int(fd), int(f.Fd()), &o, int(min(int64(chunk), size-off, left)))
				if k > 0 {
					off += int64(k)
					if respBytes > 0 {
						left -= int64(k)
					}
				}
				if errors.Is(err, syscall.EAGAIN) {
					return false // wait until writable
				}
				if err != nil {
					sendErr = err
					return true
				}
			}
			return true
		})
		sendErr = cmp.Or(sendErr, werr)
	}
	return sendErr
}

// receive is the loopback receiver: it dials streams connections to addr,
// reads each to its end into one buffer, and prints the bytes read and its
// own CPU since the last connection was up.
func receive(addr string, streams, readBytes, respBytes int) error {
	conns := make([]net.Conn, streams)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	r0 := proc.SelfCPU()
	var (
		received atomic.Int64
		wg       sync.WaitGroup
		errs     = make([]error, streams)
	)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, max(readBytes, respBytes))
			for {
				var k int
				var err error
				if respBytes > 0 {
					if _, err = c.Write([]byte{0, 0, 0, 1}); err == nil {
						k, err = io.ReadFull(c, buf[:respBytes])
					}
				} else {
					k, err = c.Read(buf)
				}
				received.Add(int64(k))
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
						errs[i] = err
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err := fmt.Printf("received=%d cpu_ns=%d\n", received.Load(), int64(proc.SelfCPU()-r0))
	return err
}

// write appends chunk-sized writes to new files of size bytes each for
// dur, or until limit bytes, and returns the bytes written; the files are
// deleted at the end.
func write(dir string, size int64, chunk int, dur time.Duration, limit int64) (int64, error) {
	tmp, err := os.MkdirTemp(dir, "ceiling-write-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	buf := make([]byte, chunk)
	if _, err := rand.Read(buf); err != nil {
		return 0, err
	}
	var (
		total int64
		f     *os.File
		inF   int64
	)
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline) && total < limit; {
		if f == nil || inF >= size {
			if f != nil {
				f.Close()
			}
			f, err = os.Create(filepath.Join(tmp, fmt.Sprintf("%08d", i)))
			if err != nil {
				return total, err
			}
			i, inF = i+1, 0
		}
		k, err := f.Write(buf)
		total, inF = total+int64(k), inF+int64(k)
		if err != nil {
			f.Close()
			return total, err
		}
	}
	return total, f.Close()
}
