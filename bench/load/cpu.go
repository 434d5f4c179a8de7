package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go runs on (sysconf(_SC_CLK_TCK) needs cgo).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system, all threads, including threads
// that have exited) process pid has used so far, from /proc/PID/stat, in
// clock ticks of 10 ms. (/proc/PID/schedstat has nanoseconds but counts only
// the main thread, so it would miss nearly all of a JVM's or a Go program's
// work.)
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime and stime (fields 14 and 15) from a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may itself hold
// spaces and parentheses, so the fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no ')' in %q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * clockTick, nil
}

// selfCPU is this process's CPU time (user + system) in microseconds'
// resolution, from getrusage.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter measures one interval: wall time, this process's CPU and the summed
// CPU of the broker processes.
type meter struct {
	pids    []int
	start   time.Time
	self0   time.Duration
	broker0 time.Duration
}

func startMeter(pids []int) (*meter, error) {
	m := &meter{pids: pids}
	var err error
	if m.broker0, err = brokerCPU(pids); err != nil {
		return nil, err
	}
	m.self0 = selfCPU()
	m.start = time.Now()
	return m, nil
}

// stop returns the wall time, own CPU and broker CPU since startMeter.
func (m *meter) stop() (wall, self, broker time.Duration, err error) {
	wall = time.Since(m.start)
	self = selfCPU() - m.self0
	b, err := brokerCPU(m.pids)
	if err != nil {
		return wall, self, 0, fmt.Errorf("broker CPU at the end (did a broker exit?): %w", err)
	}
	return wall, self, b - m.broker0, nil
}

func brokerCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		c, err := procCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}
