//go:build unix

package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is the lock Kafka also holds in each log dir.
const lockFileName = ".lock"

// lockDir takes an exclusive flock(2) on dir/.lock for the life of the
// process (the lock goes with the descriptor, so it is released on exit
// however the process ends). It must come before anything else reads or
// writes the dir: a second broker on the same dir must fail here, before it
// can recover, checkpoint or mark a clean shutdown in files that belong to
// the running one.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("broker: lock file %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("broker: failed to acquire the lock on %s: another broker (process %s) is using the log dir %s; stop it or use another log.dirs", path, lockHolder(path), dir)
		}
		return nil, fmt.Errorf("broker: lock %s: %w", path, err)
	}
	// Record the holder for the message above; informative only.
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	return f, nil
}

// lockHolder reads the pid the holder wrote into the lock file.
func lockHolder(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return "unknown"
	}
	for i, c := range data {
		if c < '0' || c > '9' {
			data = data[:i]
			break
		}
	}
	if len(data) == 0 {
		return "unknown"
	}
	return string(data)
}
