// Package guard runs the broker's goroutines and timer callbacks under one
// recover helper. A bug in one of them fails the request, member or
// partition it was working for, and is logged with its stack; it never
// takes the whole broker down (a Go panic outside recover ends the
// process).
//
// Every `go` statement and time.AfterFunc in the broker's packages goes
// through Go or AfterFunc, or starts with `defer guard.Recover(...)`.
package guard

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// panics counts recovered panics since start, for tests and metrics.
var panics atomic.Int64

// Panics returns how many panics were recovered since the process started.
func Panics() int64 { return panics.Load() }

// Recover must be deferred directly. It stops a panic, logs it at Error with
// the stack and what the goroutine was doing, then calls onPanic (if not
// nil) so the caller can fail what it was serving. A panic inside onPanic
// is recovered and logged too.
func Recover(log *slog.Logger, what string, onPanic func(v any)) {
	v := recover()
	if v == nil {
		return
	}
	report(log, what, v)
	if onPanic != nil {
		func() {
			defer func() {
				if v2 := recover(); v2 != nil {
					report(log, what+" (panic handler)", v2)
				}
			}()
			onPanic(v)
		}()
	}
}

func report(log *slog.Logger, what string, v any) {
	panics.Add(1)
	if log == nil {
		log = slog.Default()
	}
	log.Error("recovered panic", "in", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

// Go runs fn in a new goroutine under Recover.
func Go(log *slog.Logger, what string, fn func(), onPanic func(v any)) {
	go func() {
		defer Recover(log, what, onPanic)
		fn()
	}()
}

// AfterFunc is time.AfterFunc with fn under Recover.
func AfterFunc(d time.Duration, log *slog.Logger, what string, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		defer Recover(log, what, nil)
		fn()
	})
}
