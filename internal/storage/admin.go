package storage

// Topic administration at the storage level: creating many partitions with
// one directory fsync, detaching a topic's partitions for asynchronous
// deletion, and the per-partition offline state recovery can leave.
//
// The cluster metadata log (through the broker), not the directories,
// decides which topics exist (Options.Adopt). That is what lets these
// operations skip most fsyncs: a partition directory only matters once the
// metadata log durably says its topic is created, and the broker recreates
// the (empty) files of such a topic if a crash lost them.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrPartitionOffline: recovery found records missing in the middle of
// the partition's log (see Log.Offline).
var ErrPartitionOffline = errors.New("storage: partition offline")

const (
	suffixDelete = "-delete"
	suffixStray  = "-stray"
	// maxDirName is the longest file name most file systems take; Kafka caps
	// its -delete and -stray names the same way.
	maxDirName = 255
)

// asideName is Kafka's name for a directory set aside:
// topic-N.<32 hex digits><suffix>, with the topic-N part shortened if the
// whole would not fit in a file name.
func asideName(tp topicPartition, suffix string) string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	tail := "." + hex.EncodeToString(u[:]) + suffix
	head := fmt.Sprintf("%s-%d", tp.topic, tp.partition)
	if len(head)+len(tail) > maxDirName {
		head = head[:maxDirName-len(tail)]
	}
	return head + tail
}

// renameAside renames a partition directory to its -delete or -stray name
// and returns the new path.
func (s *Store) renameAside(dir string, tp topicPartition, suffix string) (string, error) {
	to := filepath.Join(filepath.Dir(dir), asideName(tp, suffix))
	if err := s.fsys.Rename(dir, to); err != nil {
		return "", err
	}
	return to, nil
}

// CreatePartitions makes partitions [from, to) of a topic, each with its
// directory, partition.metadata, leader-epoch-checkpoint and an empty first
// segment, and opens them. The files are not fsynced one by one: only the
// log dir is, once at the end. The caller must make the topic durable in
// its catalog only after this returns, and must treat the partitions as
// absent until then; a crash before that leaves directories that Open's
// Adopt removes.
//
// On error nothing is left behind (best effort) and no partition is open.
func (s *Store) CreatePartitions(topic string, from, to int32, topicID [16]byte, cfg LogConfig) error {
	if topic == "" || topic == "." || topic == ".." || strings.ContainsAny(topic, "/\\\x00") || from < 0 || to < from {
		return fmt.Errorf("storage: invalid partitions %q [%d, %d)", topic, from, to)
	}
	cfg = cfg.sanitized()
	s.mu.RLock()
	closed := s.closed
	var exists error
	for p := from; p < to && exists == nil; p++ {
		if _, ok := s.logs[topicPartition{topic, p}]; ok {
			exists = fmt.Errorf("%w: %s-%d", ErrLogExists, topic, p)
		}
	}
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if exists != nil {
		return exists
	}

	made := make([]*Log, 0, to-from)
	var dirs []string
	undo := func(err error) error {
		for _, l := range made {
			l.close(true)
		}
		for _, d := range dirs {
			_ = s.fsys.RemoveAll(d)
		}
		return err
	}
	for p := from; p < to; p++ {
		tp := topicPartition{topic, p}
		dir := filepath.Join(s.dir, fmt.Sprintf("%s-%d", topic, p))
		if _, err := s.fsys.Stat(dir); err == nil {
			return undo(fmt.Errorf("%w: directory %s exists", ErrLogExists, dir))
		}
		if err := s.fsys.MkdirAll(dir, 0o755); err != nil {
			return undo(fmt.Errorf("storage: %w", err))
		}
		dirs = append(dirs, dir)
		l, err := s.newLog(dir, tp, topicID, cfg)
		if err != nil {
			return undo(fmt.Errorf("storage: create %s: %w", dir, err))
		}
		made = append(made, l)
		if err := writeFileNoSync(s.fsys, dir, partitionMetaFile, encodePartitionMetadata(topicID)); err != nil {
			return undo(fmt.Errorf("storage: create %s: %w", dir, err))
		}
		if err := writeFileNoSync(s.fsys, dir, leaderEpochFile, encodeEpochs(nil)); err != nil {
			return undo(fmt.Errorf("storage: create %s: %w", dir, err))
		}
	}
	if err := syncDir(s.fsys, s.dir); err != nil {
		return undo(fmt.Errorf("storage: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return undo(ErrClosed)
	}
	for _, l := range made {
		if _, ok := s.logs[topicPartition{topic, l.partition}]; ok {
			return undo(fmt.Errorf("%w: %s-%d", ErrLogExists, topic, l.partition))
		}
	}
	for _, l := range made {
		s.logs[topicPartition{topic, l.partition}] = l
	}
	return nil
}

// writeFileNoSync creates name in dir with data, without fsync: for files
// whose loss a crash-time repair covers (see CreatePartitions).
func writeFileNoSync(fsys FS, dir, name string, data []byte) error {
	f, err := fsys.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// DetachTopic closes partitions [0, n) of a topic and renames their
// directories to Kafka's topic-N.<uuid>-delete form, with one log dir fsync
// and one checkpoint for the lot. It returns the renamed paths for
// RemoveDirs, which may run later in the background (Open removes any
// -delete directory a crash leaves). Partitions that are not open are
// skipped. Fetches in progress keep reading their open files.
func (s *Store) DetachTopic(topic string, n int32) ([]string, error) {
	var logs []*Log
	s.mu.Lock()
	for p := int32(0); p < n; p++ {
		tp := topicPartition{topic, p}
		if l, ok := s.logs[tp]; ok {
			delete(s.logs, tp)
			logs = append(logs, l)
		}
	}
	s.mu.Unlock()
	var paths []string
	var errs []error
	for _, l := range logs {
		l.close(true)
		to, err := s.renameAside(l.dir, topicPartition{l.topic, l.partition}, suffixDelete)
		if err != nil {
			// The directory stays under its own name; the topic is gone
			// from the catalog, so the next Open's Adopt removes it.
			errs = append(errs, fmt.Errorf("storage: delete %s: %w", l.dir, err))
			continue
		}
		paths = append(paths, to)
	}
	if err := syncDir(s.fsys, s.dir); err != nil {
		errs = append(errs, fmt.Errorf("storage: %w", err))
	}
	// Drop the partitions from the checkpoint files now, so a topic created
	// again under the same name does not inherit their offsets.
	if err := s.Checkpoint(); err != nil {
		errs = append(errs, err)
	}
	return paths, errors.Join(errs...)
}

// RemoveDirs removes directories DetachTopic renamed.
func (s *Store) RemoveDirs(paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := s.fsys.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(paths) > 0 {
		if err := syncDir(s.fsys, s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SetTopicID rewrites a partition's partition.metadata with the topic id
// the catalog holds, after Open found it unreadable or stale (it is written
// without fsync at creation). Call only before the log is shared.
func (s *Store) SetTopicID(l *Log, id [16]byte) error {
	if err := writeFileAtomic(s.fsys, l.dir, partitionMetaFile, encodePartitionMetadata(id)); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	l.topicID = id
	return nil
}

// PartitionDirs lists the names of the topic-N partition directories in a
// log dir without opening anything, so the broker can refuse to start on a
// dir whose topic catalog is missing.
func PartitionDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if _, ok := parsePartitionDir(e.Name()); ok && e.IsDir() && e.Name() != MetadataDir {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Offline reports why the partition must not be served, or nil. Recovery
// takes a partition offline when its segments do not follow each other (a
// missing, empty or short segment in the middle: acknowledged records are
// gone) and gregor.recovery.accept.gaps does not name it. The broker
// answers KAFKA_STORAGE_ERROR for it; other partitions are unaffected. The
// state is fixed at Open: restart with the property set to accept the loss.
func (l *Log) Offline() error {
	if l.store == nil {
		return nil
	}
	return l.store.offline[l]
}

// HasOfflinePartitions reports whether Open left any partition offline, so
// callers can skip per-partition checks in the common case.
func (s *Store) HasOfflinePartitions() bool { return len(s.offline) > 0 }
