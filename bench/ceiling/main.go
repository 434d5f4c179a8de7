// Command ceiling measures two limits of the machine a broker runs on,
// with no broker involved, so a benchmark can say how close a broker gets:
//
//   - loopback: a plain TCP loop over 127.0.0.1, the sender passing a
//     cached file to the socket with sendfile (as a zero-copy fetch does)
//     and the receiver reading into one buffer and dropping it. The
//     ceiling for consuming a cached topic.
//
//   - write: 1 MiB write calls appending to new files in -dir, through the
//     page cache, as a broker with durability=os appends its segments;
//     a new file every -file-bytes. The ceiling for produce with
//     durability=os.
//
// Usage:
//
//	go run ./bench/ceiling -mode loopback -duration 5s
//	go run ./bench/ceiling -mode write -duration 5s -dir /tmp
//
// It prints one line, like bench/load's:
//
//	ceiling: mode=loopback bytes=... seconds=5.000 mib_per_sec=... cpu_seconds=... cpu_seconds_per_gib=...
//
// cpu_seconds is this process's user+system CPU (getrusage), sender and
// receiver (or writer) together. The loopback mode also prints each side's
// own (sender_cpu_seconds_per_gib, receiver_cpu_seconds_per_gib): each runs
// on a locked OS thread and reads its thread's rusage. On loopback the
// sender's thread does the TCP work of both ends (the receive processing
// runs in its softirq) and the receiver's the copy into user memory, so the
// sender side is what a broker serving a zero-copy fetch cannot go below. The write mode deletes its files at the
// end; the loopback mode writes a -file-bytes file of random bytes first
// (not timed) and deletes it too.
package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
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
	chunk := flag.Int("chunk", 1<<20, "bytes per sendfile or write call")
	maxBytes := flag.Int64("max-bytes", 4<<30, "write: stop after this many bytes, even before -duration")
	flag.Parse()
	var (
		n     int64
		err   error
		sides [2]time.Duration // loopback: sender, receiver
	)
	r0 := proc.SelfCPU()
	start := time.Now()
	switch *mode {
	case "loopback":
		n, err = loopback(*dir, *fileBytes, *chunk, *dur, &start, &r0, &sides)
	case "write":
		n, err = write(*dir, *fileBytes, *chunk, *dur, *maxBytes)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	secs := time.Since(start).Seconds()
	cpu := proc.SelfCPU() - r0
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	gib := max(float64(n)/(1<<30), 1e-9)
	fmt.Printf("ceiling: mode=%s bytes=%d seconds=%.3f mib_per_sec=%.2f cpu_seconds=%.3f cpu_seconds_per_gib=%.3f",
		*mode, n, secs, float64(n)/(1<<20)/secs, cpu.Seconds(), cpu.Seconds()/gib)
	if *mode == "loopback" {
		fmt.Printf(" sender_cpu_seconds_per_gib=%.3f receiver_cpu_seconds_per_gib=%.3f", sides[0].Seconds()/gib, sides[1].Seconds()/gib)
	}
	fmt.Println()
}

// threadCPU is the calling OS thread's user+system CPU.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopback sends a cached file over a loopback TCP connection with
// sendfile for dur and returns the bytes received. The clock and the CPU
// count restart once the file is written and read back (cached).
func loopback(dir string, size int64, chunk int, dur time.Duration, start *time.Time, r0 *time.Duration, sides *[2]time.Duration) (int64, error) {
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
	var received atomic.Int64
	var measuring atomic.Bool // set when the sender starts its clock
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		var t0 time.Duration
		started := false
		for {
			k, err := c.Read(buf)
			if !started && measuring.Load() {
				started, t0 = true, threadCPU()
			}
			received.Add(int64(k))
			if err != nil {
				sides[1] = threadCPU() - t0
				if errors.Is(err, io.EOF) {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	tc := c.(*net.TCPConn)
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	*start, *r0 = time.Now(), proc.SelfCPU()
	sendT0 := threadCPU()
	measuring.Store(true)
	base := received.Load()
	deadline := start.Add(dur)
	var off int64
	var sendErr error
	for time.Now().Before(deadline) && sendErr == nil {
		werr := raw.Write(func(fd uintptr) bool {
			for time.Now().Before(deadline) {
				if off >= size {
					off = 0
				}
				o := off
				k, err := syscall.Sendfile(int(fd), int(f.Fd()), &o, int(min(int64(chunk), size-off)))
				if k > 0 {
					off += int64(k)
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
		if werr != nil {
			sendErr = werr
		}
	}
	n := received.Load() - base
	sides[0] = threadCPU() - sendT0
	c.Close()
	if err := <-done; err != nil && sendErr == nil {
		sendErr = err
	}
	return n, sendErr
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
