//go:build linux

package storage

import (
	"os"
	"syscall"
)

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// readFileDirect reads a whole small file with four system calls (open,
// fstat, pread, close). An *os.File costs more: registering with the poller
// (which a regular file refuses) and fcntl calls. Start-up reads five small
// files per partition, 50,000 at 10,000 partitions. ok is always true here.
func readFileDirect(path string) (_ []byte, _ error, ok bool) {
	fd, err := retryEINTR(func() (int, error) { return syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}, true
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if _, err := retryEINTR(func() (int, error) { return 0, syscall.Fstat(fd, &st) }); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}, true
	}
	buf := make([]byte, st.Size)
	n := 0
	for n < len(buf) {
		k, err := retryEINTR(func() (int, error) { return syscall.Pread(fd, buf[n:], int64(n)) })
		if err != nil {
			return nil, &os.PathError{Op: "pread", Path: path, Err: err}, true
		}
		if k == 0 {
			break // the file shrank since fstat
		}
		n += k
	}
	return buf[:n], nil, true
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}
