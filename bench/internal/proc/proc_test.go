package proc

import (
	"os"
	"testing"
	"time"
)

// This process's CPU time grows by about what a busy loop spends, by
// every account; a missing process is an error.
func TestCPU(t *testing.T) {
	pid := os.Getpid()
	before, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	threads0, err := ThreadsCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Busy for 300 ms of CPU by getrusage's account, however long that
	// takes on a loaded machine.
	s0 := SelfCPU()
	for deadline := time.Now().Add(time.Minute); SelfCPU()-s0 < 300*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("getrusage: %v after a minute busy", SelfCPU()-s0)
		}
	}
	after, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 200*time.Millisecond {
		t.Fatalf("/proc CPU %v then %v after 300 ms of CPU", before, after)
	}
	if threads1, err := ThreadsCPU(pid); err != nil || threads1-threads0 < 200*time.Millisecond {
		t.Fatalf("schedstat: %v (%v) after 300 ms of CPU", threads1-threads0, err)
	}
	if _, err := CPU(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}

func TestParseStat(t *testing.T) {
	for line, want := range map[string]time.Duration{
		"42 (a b) c)) S 1 1 1 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 1 0 5 0 0\n":       2670 * time.Millisecond,
		"4242 (gre gor) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3": 3 * time.Second,
	} {
		if got, err := ParseStat([]byte(line)); err != nil || got != want {
			t.Errorf("ParseStat(%q) = %v, %v; want %v", line, got, err, want)
		}
	}
	if got, err := ParseStatTimes([]byte("4242 (gre gor) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3")); err != nil ||
		got != (Times{User: 2500 * time.Millisecond, System: 500 * time.Millisecond}) {
		t.Errorf("ParseStatTimes = %+v, %v; want 2.5 s user, 0.5 s system", got, err)
	}
	if _, err := ParseStat([]byte("42 no parenthesis")); err == nil {
		t.Error("no error without the command name")
	}
}

func TestMemoryAndFDs(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("ReadMemory: %+v, %v", m, err)
	}
	if n, err := OpenFDs(os.Getpid()); err != nil || n < 3 {
		t.Fatalf("OpenFDs: %d, %v", n, err)
	}
}
