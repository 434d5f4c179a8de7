//go:build !linux

package storage

// backgroundPriority is a no-op where per-thread priorities are not set.
func backgroundPriority() {}
