// Package proc reads what the benchmarks measure of a process from Linux's
// /proc: its CPU time, memory and open descriptors; and this process's own
// CPU time.
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go runs on (sysconf(_SC_CLK_TCK) needs cgo).
const clockTick = 10 * time.Millisecond

// CPU is the CPU time (user + system, all threads, including threads that
// have exited) process pid has used so far, from /proc/PID/stat, in clock
// ticks of 10 ms.
func CPU(pid int) (time.Duration, error) {
	t, err := CPUTimes(pid)
	return t.User + t.System, err
}

// Times is a process's CPU time in user space and in the kernel.
type Times struct{ User, System time.Duration }

// CPUTimes is CPU split into user and system time.
func CPUTimes(pid int) (Times, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Times{}, err
	}
	return ParseStatTimes(b)
}

// ParseStat reads utime and stime (fields 14 and 15) from a /proc/PID/stat
// line and returns their sum.
func ParseStat(b []byte) (time.Duration, error) {
	t, err := ParseStatTimes(b)
	return t.User + t.System, err
}

// ParseStatTimes reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may itself hold spaces and parentheses, so the fields are counted from
// the last ')'.
func ParseStatTimes(b []byte) (Times, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Times{}, fmt.Errorf("/proc stat: no ')' in %q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return Times{}, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	var ticks [2]int64
	for k, s := range f[11:13] {
		v, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return Times{}, fmt.Errorf("/proc stat: %w", err)
		}
		ticks[k] = v
	}
	return Times{User: time.Duration(ticks[0]) * clockTick, System: time.Duration(ticks[1]) * clockTick}, nil
}

// ThreadsCPU is the time process pid's live threads have run on a CPU, in
// nanoseconds: the sum of their /proc/PID/task/TID/schedstat, the
// scheduler's own account, where CPU counts 10 ms ticks (too coarse for a
// few hundred requests). A thread that exited since the last call is
// missed, which a Go program's long-lived threads make rare.
func ThreadsCPU(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		total += ns
	}
	return time.Duration(total), nil
}

// SelfCPU is this process's CPU time (user + system) in microseconds'
// resolution, from getrusage.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Memory is a process's resident set now (VmRSS) and at its peak (VmHWM),
// in bytes.
type Memory struct{ RSS, HWM int64 }

// ReadMemory reads VmRSS and VmHWM from /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var dst *int64
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &m.RSS
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &m.HWM
		default:
			continue
		}
		fs := bytes.Fields(line) // "VmRSS:", n, "kB"
		if len(fs) < 2 {
			return m, fmt.Errorf("/proc status: %q", line)
		}
		kb, err := strconv.ParseInt(string(fs[1]), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc status: %w", err)
		}
		*dst = kb << 10
	}
	return m, sc.Err()
}

// OpenFDs counts the entries of /proc/PID/fd.
func OpenFDs(pid int) (int, error) {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(es), err
}
