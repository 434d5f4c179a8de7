//go:build unix

package broker

import "syscall"

// nofileLimit is the soft RLIMIT_NOFILE now in force. Go (since
// 1.19) has already raised the soft limit to the hard one when the process
// started (to the hard limit minus one; syscall/rlimit.go), so this is
// about the most the broker can open.
func nofileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}
