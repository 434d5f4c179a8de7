package broker

// Log dir failure. A real I/O error (EIO, ENOSPC, a failed fsync) takes the
// log dir offline for good (storage.Store.fail): from then on every
// partition answers KAFKA_STORAGE_ERROR in Metadata, Produce, Fetch and
// ListOffsets, and nothing is read from or written to the dir. Gregor uses
// a single log dir, so the broker then has nothing left to serve; Kafka
// shuts a broker down when its last log dir fails, and so does `gregor
// serve`: it waits on Failed and then closes the broker (Close flushes
// nothing of the failed dir and writes no clean-shutdown marker, so the
// next start recovers it). Running out of file descriptors is not a
// failure: it fails only the request that hit it.

// Failed returns a channel that is closed when the log dir goes offline.
// The owner of the broker should then Close it and exit non-zero.
func (b *Broker) Failed() <-chan struct{} { return b.store.Failed() }

// LogDirFailure returns the error that took the log dir offline, or nil
// while it is online (the state the metrics exporter reports).
func (b *Broker) LogDirFailure() error { return b.store.Failure() }
