//go:build unix

package broker

import "syscall"

// openFileLimit is RLIMIT_NOFILE's soft limit (which the Go runtime raises
// to the hard limit at start on Linux), or 0 if unknown.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
