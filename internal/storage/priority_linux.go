package storage

import (
	"runtime"
	"syscall"
)

// backgroundPriority pins the calling goroutine to its OS thread for the
// rest of its life and gives that thread the lowest CPU priority (nice
// 19), so background work (the log cleaner) runs on what produce and
// fetch leave idle instead of competing with them for the cores. The
// thread ends with the goroutine and never serves another one.
func backgroundPriority() {
	runtime.LockOSThread()
	// Raising one's own niceness needs no privilege; a refusal only means
	// the cleaner competes at normal priority, as it would elsewhere.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
}
