package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregorhq/gregor/internal/guard"
)

// Store is one log dir: every partition under it, the checkpoint files and
// the group-commit syncer.
type Store struct {
	dir    string
	fsys   FS
	logger *slog.Logger
	clock  func() time.Time
	pidExp time.Duration
	cfgFor func(topic string, partition int32) LogConfig
	adopt  func(topic string, partition int32, topicID [16]byte) Adoption
	gapsOK func(topic string, partition int32) bool
	obs    SyncObserver // nil: nobody listens
	// offline holds the logs recovery found a hole in (see recover.go);
	// written only by Open, read-only afterwards, so it needs no lock.
	offline map[*Log]error

	mu     sync.RWMutex
	logs   map[topicPartition]*Log
	closed bool

	failed   atomic.Pointer[error] // first write/fsync failure; sticky
	failMu   sync.Mutex            // guards failedCh's creation
	failedCh chan struct{}         // closed when failed is set; see Failed
	// hwDurable: the high watermark is the durable offset, not the log end
	// (gregor.durability=fsync). See SetDurableHighWatermark.
	hwDurable atomic.Bool
	sync      *syncer
	ckptMu    sync.Mutex // serializes checkpoint file writes
	cleaner   *cleaner   // the log cleaner, once started (cleaner.go); mu
}

// Open opens (creating if needed) the log dir, loads every topic-N
// partition directory, recovers them if the last shutdown was not clean
// (see recover.go), writes fresh checkpoints and starts the syncer.
//
// Partitions get their configuration from Options.LogConfig (default:
// DefaultLogConfig()); the broker can change it with SetConfig.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: Options.Dir is empty")
	}
	s := &Store{
		dir:     opts.Dir,
		fsys:    opts.FS,
		logger:  opts.Logger,
		clock:   opts.Now,
		pidExp:  opts.ProducerIDExpiration,
		cfgFor:  opts.LogConfig,
		adopt:   opts.Adopt,
		gapsOK:  opts.AcceptGaps,
		obs:     opts.Observer,
		logs:    make(map[topicPartition]*Log),
		offline: make(map[*Log]error),
		sync:    newSyncer(),
	}
	if s.fsys == nil {
		s.fsys = OSFS{}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.pidExp == 0 {
		s.pidExp = 24 * time.Hour
	}
	if err := s.fsys.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}

	_, err := s.fsys.Stat(filepath.Join(s.dir, cleanShutdownFile))
	clean := err == nil
	recoveryPoints := s.readOffsets(recoveryPointFile)
	logStarts := s.readOffsets(logStartOffsetFile)
	hws := s.readOffsets(replicationFile)

	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	var jobs []loadJob
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if strings.HasSuffix(name, "-delete") {
			// A deletion (ours or Kafka's rename-then-delete) that a crash
			// interrupted: finish it.
			s.fsys.RemoveAll(filepath.Join(s.dir, name))
			continue
		}
		tp, ok := parsePartitionDir(name)
		if !ok || name == MetadataDir {
			continue
		}
		job := loadJob{dir: filepath.Join(s.dir, name), tp: tp}
		job.meta, job.metaErr = readFile(s.fsys, filepath.Join(job.dir, partitionMetaFile))
		if s.adopt != nil {
			var id [16]byte
			if job.metaErr == nil {
				id, _ = decodePartitionMetadata(job.meta)
			}
			switch s.adopt(tp.topic, tp.partition, id) {
			case AdoptDelete:
				s.logger.Warn("removing partition directory of a topic that was deleted or never fully created", "dir", name)
				to, err := s.renameAside(job.dir, tp, suffixDelete)
				if err == nil {
					err = s.fsys.RemoveAll(to)
				}
				if err != nil {
					return nil, fmt.Errorf("storage: %w", err)
				}
				continue
			case AdoptStray:
				to, err := s.renameAside(job.dir, tp, suffixStray)
				if err != nil {
					return nil, fmt.Errorf("storage: %w", err)
				}
				s.logger.Error("partition directory belongs to no known topic; set aside, not served (remove it, or move it back after restoring the topic catalog)", "dir", name, "moved_to", filepath.Base(to))
				continue
			}
		}
		var hasRP, hasLS bool
		job.recoveryPoint, hasRP = recoveryPoints[tp]
		job.logStart, hasLS = logStarts[tp]
		if !hasRP {
			job.recoveryPoint = -1
		}
		if !hasLS {
			job.logStart = -1
		}
		jobs = append(jobs, job)
	}
	if err := s.loadLogs(jobs, clean); err != nil {
		s.closeLogs()
		return nil, err
	}
	for _, j := range jobs {
		if hw, ok := hws[j.tp]; ok {
			// The replicated high watermark to start from if the log is
			// replicated (SetReplicated): the durable offset may hold
			// records the ISR never had.
			l := j.log
			l.replHW = max(l.logStart, min(hw, l.leo))
			l.replHWSaved = true
		}
	}
	if clean {
		// Remove the marker before anything can be appended, so a crash
		// from here on is detected as unclean.
		if err := s.fsys.Remove(filepath.Join(s.dir, cleanShutdownFile)); err != nil {
			s.closeLogs()
			return nil, fmt.Errorf("storage: %w", err)
		}
		if err := syncDir(s.fsys, s.dir); err != nil {
			s.closeLogs()
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	if err := s.Checkpoint(); err != nil {
		s.closeLogs()
		return nil, err
	}
	// A bug in the syncer would leave every durability wait hanging; it
	// takes the log dir offline instead, loudly, and the broker stops
	// cleanly with nothing acknowledged lost.
	guard.Go(s.logger, "group-commit syncer", s.runSyncer, func(v any) {
		s.fail(fmt.Errorf("group-commit syncer panicked: %v", v))
	})
	s.logger.Info("opened log dir", "dir", s.dir, "partitions", len(s.logs), "clean_shutdown", clean)
	return s, nil
}

func (s *Store) closeLogs() {
	for _, l := range s.logs {
		l.close(true)
	}
}

// loadJob is one partition directory for Open to load.
type loadJob struct {
	dir                     string
	tp                      topicPartition
	meta                    []byte // partition.metadata, as read
	metaErr                 error
	recoveryPoint, logStart int64 // from the checkpoints; -1: none

	log     *Log  // loaded
	holeErr error // a hole recovery found (the partition opens offline)
	err     error
}

// logWorkers is how many partitions Open loads and Close flushes at once.
// Both are mostly small reads, writes, fsyncs and directory operations,
// which other partitions' overlap with (the file system commits
// overlapping fsyncs together): at 10,000 partitions, loading one at a
// time took twice as long on two cores, and closing 10 s instead of 3.
const logWorkers = 16

// forEachLog calls fn(i) for every i in [0, n), logWorkers at a time, and
// returns when every call has.
func forEachLog(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(logWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// loadLogs loads every job's log, logWorkers at a time, and adds them to
// s.logs in jobs' order. On an error it releases what it loaded and
// returns the first failing directory's error.
func (s *Store) loadLogs(jobs []loadJob, clean bool) error {
	forEachLog(len(jobs), func(i int) {
		j := &jobs[i]
		// A bug that on-disk data trips fails Open with an error naming
		// the directory, not the whole process from a worker goroutine.
		defer func() {
			if v := recover(); v != nil {
				j.log, j.err = nil, fmt.Errorf("panic: %v", v)
			}
		}()
		j.log, j.holeErr, j.err = s.loadLog(j, clean)
	})
	var first error
	for _, j := range jobs {
		if j.err != nil && first == nil {
			first = fmt.Errorf("storage: load %s: %w", filepath.Base(j.dir), j.err)
		}
	}
	for _, j := range jobs {
		if j.log == nil {
			continue
		}
		if first != nil {
			j.log.close(true)
			continue
		}
		if j.holeErr != nil {
			s.offline[j.log] = j.holeErr
		}
		s.logs[j.tp] = j.log
	}
	return first
}

// MetadataDir is the metadata log's directory in a log dir (Kafka's
// name); it looks like a partition but is the quorum's, not storage's.
const MetadataDir = "__cluster_metadata-0"

// parsePartitionDir splits "topic-N".
func parsePartitionDir(name string) (topicPartition, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return topicPartition{}, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != name[i+1:] {
		return topicPartition{}, false
	}
	return topicPartition{name[:i], int32(p)}, true
}

func (s *Store) readOffsets(name string) map[topicPartition]int64 {
	data, err := readFile(s.fsys, filepath.Join(s.dir, name))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.logger.Warn("cannot read checkpoint", "file", name, "err", err)
		}
		return nil
	}
	m, err := decodeOffsets(data)
	if err != nil {
		// Without the checkpoint every partition is recovered from its
		// first segment: slower, never wrong.
		s.logger.Warn("ignoring corrupt checkpoint", "file", name, "err", err)
		return nil
	}
	return m
}

func (s *Store) now() time.Time { return s.clock() }

// fail handles an I/O error of a write, roll or fsync. Running out of file
// descriptors (EMFILE, ENFILE) is transient: it fails only that operation
// and returns ErrTooManyOpenFiles. Anything else (EIO, ENOSPC, a failed
// fsync) takes the log dir offline for good, as Kafka does: the first such
// error is recorded, logged at Error, Failed() is closed, parked readers
// are woken, and from then on appends, reads and durability waits fail with
// it. It returns the error the caller should return.
func (s *Store) fail(err error) error {
	if isTransientIO(err) {
		s.logger.Warn("out of file descriptors; operation refused, log dir stays online", "dir", s.dir, "err", err)
		return fmt.Errorf("%w: %w", ErrTooManyOpenFiles, err)
	}
	werr := fmt.Errorf("%w: %w", ErrStorageFailed, err)
	if s.failed.CompareAndSwap(nil, &werr) {
		s.logger.Error("log dir failed; it is offline: appends, reads and fsyncs are refused from now on", "dir", s.dir, "err", err)
		s.failMu.Lock()
		close(s.failedChan())
		s.failMu.Unlock()
		// Parked fetches answer with the error now rather than at their
		// timeout. In a goroutine: fail runs under a Log's appendMu or
		// syncMu, and waking walks every log of the store.
		guard.Go(s.logger, "wake parked readers", s.wakeAllReaders, nil)
	}
	return *s.failed.Load()
}

// failure returns the sticky log dir failure, or nil.
func (s *Store) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Dir returns the log dir.
func (s *Store) Dir() string { return s.dir }

// Partitions returns all open logs, sorted by topic and partition.
func (s *Store) Partitions() []*Log {
	s.mu.RLock()
	out := make([]*Log, 0, len(s.logs))
	for _, l := range s.logs {
		out = append(out, l)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out
}

// Get returns the log of a partition, or nil.
func (s *Store) Get(topic string, partition int32) *Log {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.logs[topicPartition{topic, partition}]
}

// Create makes a new partition: its directory, partition.metadata,
// leader-epoch-checkpoint and an empty first segment. It fails with
// ErrLogExists if the partition is already open.
func (s *Store) Create(topic string, partition int32, topicID [16]byte, cfg LogConfig) (*Log, error) {
	if topic == "" || topic == "." || topic == ".." || strings.ContainsAny(topic, "/\\\x00") || partition < 0 {
		return nil, fmt.Errorf("storage: invalid partition %q-%d", topic, partition)
	}
	tp := topicPartition{topic, partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.logs[tp]; ok {
		return nil, fmt.Errorf("%w: %s-%d", ErrLogExists, topic, partition)
	}
	dir := filepath.Join(s.dir, fmt.Sprintf("%s-%d", topic, partition))
	if _, err := s.fsys.Stat(dir); err == nil {
		return nil, fmt.Errorf("%w: directory %s exists", ErrLogExists, dir)
	}
	if err := s.fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	l, err := s.newLog(dir, tp, topicID, cfg.sanitized())
	if err == nil {
		err = writeFileAtomic(s.fsys, dir, partitionMetaFile, encodePartitionMetadata(topicID))
	}
	if err == nil {
		err = writeFileAtomic(s.fsys, dir, leaderEpochFile, encodeEpochs(nil))
	}
	if err == nil {
		err = syncDir(s.fsys, s.dir)
	}
	if err != nil {
		if l != nil {
			l.close(true)
		}
		s.fsys.RemoveAll(dir)
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	s.logs[tp] = l
	return l, nil
}

// newLog builds an empty log with one segment at offset 0.
func (s *Store) newLog(dir string, tp topicPartition, topicID [16]byte, cfg LogConfig) (*Log, error) {
	seg, err := createSegment(s.fsys, dir, 0, s.now())
	if err != nil {
		return nil, err
	}
	l := s.makeLog(dir, tp, topicID, cfg)
	l.segs = []*segment{seg}
	l.lastFlush = s.now()
	return l, nil
}

func (s *Store) makeLog(dir string, tp topicPartition, topicID [16]byte, cfg LogConfig) *Log {
	return &Log{
		store:     s,
		topic:     tp.topic,
		partition: tp.partition,
		topicID:   topicID,
		dir:       dir,
		fsys:      s.fsys,
		logger:    s.logger.With("topic", tp.topic, "partition", tp.partition),
		producers: make(map[int64]*producerState),
		unstable:  math.MaxInt64,
		cfg:       cfg,
	}
}

// Delete closes a partition and removes its directory. Kafka renames the
// directory to topic-N.<uuid>-delete and deletes it later; Gregor deletes
// synchronously (Open finishes any *-delete directory a crash left behind).
// Fetches in progress keep reading their open files.
func (s *Store) Delete(topic string, partition int32) error {
	tp := topicPartition{topic, partition}
	s.mu.Lock()
	l, ok := s.logs[tp]
	if ok {
		delete(s.logs, tp)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("storage: delete %s-%d: %w", topic, partition, os.ErrNotExist)
	}
	l.close(true)
	tmp := fmt.Sprintf("%s.%d-delete", l.dir, s.now().UnixNano())
	if err := s.fsys.Rename(l.dir, tmp); err != nil {
		tmp = l.dir
	}
	if err := s.fsys.RemoveAll(tmp); err != nil {
		return fmt.Errorf("storage: delete %s: %w", l.dir, err)
	}
	syncDir(s.fsys, s.dir)
	return s.Checkpoint()
}

// Checkpoint writes the recovery-point, log-start and replication
// (high watermark) checkpoint files now. (leader-epoch-checkpoint is
// written by each change of the cache.)
func (s *Store) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	rp := make(map[topicPartition]int64)
	ls := make(map[topicPartition]int64)
	hw := make(map[topicPartition]int64)
	var errs []error
	for _, l := range s.Partitions() {
		tp := topicPartition{l.topic, l.partition}
		l.mu.RLock()
		rp[tp], ls[tp], hw[tp] = l.durable, l.logStart, l.hwLocked()
		l.mu.RUnlock()
	}
	for _, f := range []struct {
		name string
		m    map[topicPartition]int64
	}{{recoveryPointFile, rp}, {logStartOffsetFile, ls}, {replicationFile, hw}} {
		if err := writeFileAtomic(s.fsys, s.dir, f.name, encodeOffsets(f.m)); err != nil {
			errs = append(errs, fmt.Errorf("storage: checkpoint %s: %w", f.name, err))
		}
	}
	return errors.Join(errs...)
}

// FlushDue fsyncs every partition whose oldest unflushed data is older than
// its flush.ms (Kafka's log.flush.scheduler.interval.ms task).
func (s *Store) FlushDue() error {
	now := s.now()
	var errs []error
	for _, l := range s.Partitions() {
		if err := l.flushDue(now); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close flushes every partition, writes producer snapshots, checkpoints
// and the clean-shutdown marker, and closes the files. Reads still in
// flight finish on their open files.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	logs := make([]*Log, 0, len(s.logs))
	for _, l := range s.logs {
		logs = append(logs, l)
	}
	s.mu.Unlock()
	s.stopCleaner()

	// Logs close in parallel: each one's flush is a few small writes and
	// fsyncs, which the file system commits together when they overlap.
	var (
		errs   []error
		errsMu sync.Mutex
	)
	forEachLog(len(logs), func(i int) {
		if err := logs[i].close(false); err != nil {
			errsMu.Lock()
			errs = append(errs, fmt.Errorf("storage: close %s: %w", logs[i].dir, err))
			errsMu.Unlock()
		}
	})
	close(s.sync.stop)
	<-s.sync.done
	if err := s.Checkpoint(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && s.failure() == nil {
		// Kafka 3.7+ writes this JSON; older versions an empty file. Only its
		// presence matters.
		if err := writeFileAtomic(s.fsys, s.dir, cleanShutdownFile, []byte(`{"version":0,"brokerEpoch":-1}`)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
