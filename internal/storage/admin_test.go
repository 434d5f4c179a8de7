package storage

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// holeyLog writes a partition with at least 4 segments and closes the store
// cleanly; it returns the segment files.
func holeyLog(t *testing.T, e *storeEnv) []string {
	t.Helper()
	cfg := testCfg()
	cfg.SegmentBytes = 1000
	e.cfg = &cfg
	s := e.open()
	l, _ := fillLog(t, s, cfg, 40)
	dir := l.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs := segmentFiles(t, dir, ".log")
	if len(logs) < 4 {
		t.Fatalf("want >= 4 segments, got %d", len(logs))
	}
	return logs
}

func TestRecoveryHoleTakesPartitionOffline(t *testing.T) {
	for _, damage := range []string{"emptied", "removed", "short"} {
		t.Run(damage, func(t *testing.T) {
			e := newEnv(t)
			logs := holeyLog(t, e)
			victim := logs[2]
			switch damage {
			case "emptied":
				truncate(t, victim, 0)
			case "removed":
				removeFile(t, victim)
			case "short":
				// Cut at a batch boundary: every byte left is valid, the
				// segment just ends too early.
				data, err := os.ReadFile(victim)
				if err != nil {
					t.Fatal(err)
				}
				hs := splitBatches(t, data)
				truncate(t, victim, int64(len(data))-hs[len(hs)-1].size())
			}
			s := e.open()
			l := s.Get("rec", 0)
			leo := l.LogEndOffset()
			err := l.Offline()
			if !errors.Is(err, ErrPartitionOffline) || !strings.Contains(err.Error(), "gregor.recovery.accept.gaps") {
				t.Fatalf("Offline() = %v, want ErrPartitionOffline naming the property", err)
			}
			if len(e.logged("hole between segments")) == 0 {
				t.Error("the hole was not logged")
			}
			// Nothing was deleted: the operator can still restore the file.
			if n := len(segmentFiles(t, l.Dir(), ".log")); n < len(logs)-1 {
				t.Errorf("%d segments left of %d", n, len(logs))
			}
			s.Close()

			// Accepting the hole serves the partition again, with the same
			// log end, and reads step over the missing offsets.
			e.log.lines = new([]string)
			s = e.openWith(func(o *Options) { o.AcceptGaps = func(string, int32) bool { return true } })
			defer s.Close()
			l = s.Get("rec", 0)
			if err := l.Offline(); err != nil {
				t.Fatalf("with AcceptGaps: Offline() = %v", err)
			}
			if l.LogEndOffset() != leo {
				t.Errorf("LEO %d after accepting, want %d", l.LogEndOffset(), leo)
			}
			if len(e.logged("RECOVERY ACCEPTED A HOLE")) == 0 {
				t.Error("accepting the hole was not logged")
			}
			hs := readAll(t, l, 0)
			if len(hs) == 0 || hs[len(hs)-1].lastOffset() != leo-1 {
				t.Errorf("read %d batches, not up to the log end", len(hs))
			}
		})
	}
}

func TestRecoveryNoHoleStaysOnline(t *testing.T) {
	e := newEnv(t)
	holeyLog(t, e)
	s := e.open()
	defer s.Close()
	if err := s.Get("rec", 0).Offline(); err != nil || s.HasOfflinePartitions() {
		t.Fatalf("intact log offline: %v", err)
	}
}

// openWith opens the env's store with extra options.
func (e *storeEnv) openWith(f func(*Options)) *Store {
	e.t.Helper()
	opts := Options{Dir: e.dir, Now: e.clock.Now, FS: e.fs, Logger: slog.New(e.log)}
	if e.cfg != nil {
		cfg := *e.cfg
		opts.LogConfig = func(string, int32) LogConfig { return cfg }
	}
	f(&opts)
	s, err := Open(opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	return s
}

func TestAdoptDeleteAndStray(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	id := [16]byte{1}
	for _, topic := range []string{"keep", "gone", "unknown"} {
		if err := s.CreatePartitions(topic, 0, 2, id, testCfg()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = e.openWith(func(o *Options) {
		o.Adopt = func(topic string, p int32, got [16]byte) Adoption {
			if got != id {
				t.Errorf("%s-%d: topic id %v, want %v", topic, p, got, id)
			}
			switch topic {
			case "keep":
				return AdoptLoad
			case "gone":
				return AdoptDelete
			}
			return AdoptStray
		}
	})
	defer s.Close()
	if s.Get("keep", 1) == nil || s.Get("gone", 0) != nil || s.Get("unknown", 0) != nil {
		t.Fatal("wrong partitions loaded")
	}
	ents, _ := os.ReadDir(e.dir)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	all := strings.Join(names, " ")
	if strings.Contains(all, "gone-") {
		t.Errorf("deleted partitions remain: %s", all)
	}
	strays, _ := filepath.Glob(filepath.Join(e.dir, "unknown-*.*-stray"))
	if len(strays) != 2 {
		t.Errorf("want 2 stray directories, have: %s", all)
	}
}

func TestCreatePartitionsAndDetach(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	defer s.Close()
	id := [16]byte{7}
	if err := s.CreatePartitions("t", 0, 3, id, testCfg()); err != nil {
		t.Fatal(err)
	}
	// Existing partitions are refused and nothing new is left behind.
	if err := s.CreatePartitions("t", 2, 5, id, testCfg()); !errors.Is(err, ErrLogExists) {
		t.Fatalf("overlapping create: %v", err)
	}
	if s.Get("t", 3) != nil {
		t.Fatal("partition 3 opened by a failed create")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "t-3")); !os.IsNotExist(err) {
		t.Fatalf("t-3 left behind: %v", err)
	}
	l := s.Get("t", 2)
	mustAppend(t, l, buildBatch(t, spec(2, 10)))
	paths, err := s.DetachTopic("t", 3)
	if err != nil || len(paths) != 3 {
		t.Fatalf("DetachTopic: %v %v", paths, err)
	}
	for _, p := range paths {
		if !strings.HasSuffix(p, "-delete") || !strings.HasPrefix(filepath.Base(p), "t-") {
			t.Errorf("renamed to %s, want Kafka's topic-N.<uuid>-delete", p)
		}
	}
	if s.Get("t", 0) != nil {
		t.Fatal("detached partition still open")
	}
	// The name is free at once, before the old directories are removed.
	if err := s.CreatePartitions("t", 0, 1, [16]byte{8}, testCfg()); err != nil {
		t.Fatalf("re-create: %v", err)
	}
	if got := s.Get("t", 0).LogEndOffset(); got != 0 {
		t.Fatalf("re-created partition has LEO %d", got)
	}
	if err := s.RemoveDirs(paths); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed", p)
		}
	}
}

// Open loads partitions logWorkers at a time: with more partitions than
// workers, after a clean stop and after a crash, every log comes back with
// its own end and topic id, the one with a hole (and only it) is offline,
// and a partition that cannot be loaded fails Open, naming its directory,
// without leaving descriptors open.
func TestOpenLoadsPartitionsInParallel(t *testing.T) {
	e := newEnv(t)
	cfg := testCfg()
	cfg.SegmentBytes = 1000
	e.cfg = &cfg
	const n = 3*logWorkers + 5
	s := e.open()
	for p := range int32(n) {
		l, err := s.Create("par", p, [16]byte{byte(p + 1)}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(p) % 7 * 3 { // 0 to 18 batches: some empty, some several segments
			sp := spec(2, int64(i))
			sp.valueSize = 100
			mustAppend(t, l, buildBatch(t, sp))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A hole in partition 13 (18 batches of about 300 bytes: several segments).
	hole := segmentFiles(t, filepath.Join(e.dir, "par-13"), ".log")
	if len(hole) < 3 {
		t.Fatalf("partition 13 has %d segments, want >= 3", len(hole))
	}
	removeFile(t, hole[1])

	check := func(s *Store) {
		t.Helper()
		for p := range int32(n) {
			l := s.Get("par", p)
			if l == nil {
				t.Fatalf("partition %d not loaded", p)
			}
			if want := int64(p) % 7 * 3 * 2; l.LogEndOffset() != want {
				t.Errorf("partition %d: log end %d, want %d", p, l.LogEndOffset(), want)
			}
			if id := l.TopicID(); id[0] != byte(p+1) {
				t.Errorf("partition %d: topic id %x, want the one it was created with", p, id)
			}
			if off := l.Offline() != nil; off != (p == 13) {
				t.Errorf("partition %d: offline %v", p, l.Offline())
			}
		}
	}
	s = e.open()
	check(s)
	s.crash()
	s = e.open()
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	fds := openFDs(t)
	// A segment that cannot be opened: a directory where a .log should be.
	bad := filepath.Join(e.dir, "par-20")
	seg := segmentFiles(t, bad, ".log")[0]
	removeFile(t, seg)
	if err := os.Mkdir(seg, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{Dir: e.dir, Now: e.clock.Now, Logger: slog.New(e.log),
		LogConfig: func(string, int32) LogConfig { return cfg }}
	if s, err := Open(opts); err == nil {
		s.Close()
		t.Fatal("Open succeeded with a directory in place of a segment")
	} else if !strings.Contains(err.Error(), "par-20") {
		t.Errorf("Open: %v, want the failing directory named", err)
	}
	if after := openFDs(t); after > fds {
		t.Errorf("%d descriptors open after the failed Open, %d before", after, fds)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}
