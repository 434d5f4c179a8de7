package storage

import (
	"errors"
	"syscall"
)

// Log dir failure, as seen from outside the package. A Store is either
// online or failed (offline); the transition is one-way and happens on the
// first real I/O error (see Store.fail). Gregor has a single log dir, so a
// failed Store means the broker has nothing left to serve: Kafka shuts a
// broker down when its last log dir goes offline, and the broker does the
// same when Failed is closed.

// Failed returns a channel that is closed when the log dir goes offline.
func (s *Store) Failed() <-chan struct{} {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failedChan()
}

// failedChan creates failedCh on first use, so the zero Store (and Open,
// which need not know about it) works. Requires s.failMu.
func (s *Store) failedChan() chan struct{} {
	if s.failedCh == nil {
		s.failedCh = make(chan struct{})
	}
	return s.failedCh
}

// Failure returns the error that took the log dir offline (wrapping
// ErrStorageFailed), or nil while it is online.
func (s *Store) Failure() error { return s.failure() }

// Fail takes the log dir offline with err, exactly as an I/O error of a
// write or fsync does. For an operator (or a test) that knows the disk is
// bad. Transient errors (EMFILE, ENFILE) do not take it offline.
func (s *Store) Fail(err error) error { return s.fail(err) }

// Err returns the log dir failure if the log's dir is offline, else nil.
// Handlers use it to answer KAFKA_STORAGE_ERROR for a partition.
func (l *Log) Err() error { return l.store.failure() }

// isTransientIO reports whether err is the process or the system running
// out of file descriptors: a condition that passes, and says nothing about
// the disk.
func isTransientIO(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, ErrTooManyOpenFiles)
}

// wakeAllReaders wakes every parked fetch of every log of the store.
func (s *Store) wakeAllReaders() {
	for _, l := range s.Partitions() {
		l.wakeReaders()
	}
}
