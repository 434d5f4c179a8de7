// Package storage is Gregor's partition log: Kafka's on-disk layout, so
// Kafka's own tools (kafka-dump-log / DumpLogSegments) read Gregor's files.
//
// # Log dir
//
//	<log dir>/
//	  .lock                              flock(2)ed by the running broker (broker package)
//	  meta.properties                    cluster.id, node.id, directory.id (Kafka's format)
//	  __cluster_metadata-0/              the metadata log (quorum package), not a partition
//	  .kafka_cleanshutdown               present only after a clean Close
//	  recovery-point-offset-checkpoint   per partition: offsets below are fsynced
//	  log-start-offset-checkpoint        per partition: first readable offset
//	  replication-offset-checkpoint      per partition: high watermark (= LEO)
//	  cleaner-offset-checkpoint          per compacted partition: first dirty offset (cleaner.go)
//	  <topic>-<partition>/               one directory per partition
//	    partition.metadata
//	    leader-epoch-checkpoint
//	    00000000000000000000.log         segment: batches from offset 0
//	    00000000000000000000.index       sparse offset index of that segment
//	    00000000000000000000.timeindex   sparse time index of that segment
//	    00000000000000004711.log         next segment, base offset 4711
//	    00000000000000004711.index
//	    00000000000000004711.timeindex
//	    00000000000000004711.snapshot    producer state as of offset 4711
//	    00000000000000004711.txnindex    aborted transactions whose marker is in this segment
//
// File names are the segment's base offset (its first offset), 20 digits,
// zero padded. Deleted partitions are renamed, as in Kafka, to
// <topic>-<partition>.<32 hex digits>-delete and removed in the background;
// Open removes any such directory a crash left. A partition directory that
// Options.Adopt disowns is removed the same way, or renamed
// <topic>-<partition>.<32 hex digits>-stray and left for the operator.
// Files are replaced atomically (write *.tmp, fsync, rename, fsync the
// directory), except the files of a newly created partition (see
// CreatePartitions in admin.go).
//
// Segments must follow each other: each starts at the offset after the
// previous one's last batch. Recovery checks it; a hole (a middle segment
// missing, emptied or cut short) takes the partition offline
// (Log.Offline) unless Options.AcceptGaps accepts the loss.
//
// # Checkpoint files (text)
//
//	recovery-point-offset-checkpoint, log-start-offset-checkpoint,
//	replication-offset-checkpoint:    leader-epoch-checkpoint:
//
//	  0                  version        0            version
//	  2                  entries        1            entries
//	  orders 0 1200                     0 0          epoch start-offset
//	  orders 1 877
//
// Gregor is one node and always leader in epoch 0, so leader-epoch-checkpoint
// holds the single entry "0 <log start offset>" (Kafka moves the first entry
// up when the log start moves). partition.metadata is
//
//	version: 0
//	topic_id: <16-byte UUID in URL-safe base64 without padding>
//
// and .kafka_cleanshutdown holds {"version":0,"brokerEpoch":-1}; only its
// presence matters.
//
// # Segment (.log): v2 record batches, back to back
//
// Batches are stored exactly as the producer sent them, except baseOffset and
// partitionLeaderEpoch (outside the CRC, set in place) and, for
// LogAppendTime topics, maxTimestamp and the timestamp-type attribute (then
// the CRC is recomputed; baseTimestamp and record deltas stay, as in Kafka).
//
//	 0                   8         12              16 17        21
//	+-------------------+---------+---------------+--+---------+
//	| baseOffset int64  | length  | partitionLead-|ma| crc     |
//	|                   | int32   | erEpoch int32 |gi| uint32  |
//	+-------------------+---------+---------------+--+---------+
//	 21      23               27                  35
//	+-------+----------------+-------------------+-------------------+
//	| attrs | lastOffset-    | baseTimestamp     | maxTimestamp      |
//	| int16 | Delta int32    | int64             | int64             |
//	+-------+----------------+-------------------+-------------------+
//	 43                  51      53             57           61
//	+-------------------+-------+--------------+------------+----------
//	| producerId int64  | epoch | baseSequence | records    | records…
//	|                   | int16 | int32        | count int32|
//	+-------------------+-------+--------------+------------+----------
//
//	length  = bytes after the length field (batch size - 12), >= 49
//	magic   = 2 (older formats are refused with ErrUnsupportedMagic)
//	crc     = CRC32C (Castagnoli) of bytes 21..end
//	attrs   = bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
//	          bit 3 timestamp type (1 = LogAppendTime), bit 4 transactional,
//	          bit 5 control
//	records = recordCount records (compressed as a whole if codec != 0); a
//	          record is varint length, int8 attributes, varlong
//	          timestampDelta, varint offsetDelta, key, value, headers
//
// # Offset index (.index) and time index (.timeindex)
//
//	.index: 8-byte entries                 .timeindex: 12-byte entries
//	+----------------+----------------+   +------------------+----------------+
//	| relOffset int32| position int32 |   | timestamp int64  | relOffset int32|
//	+----------------+----------------+   +------------------+----------------+
//
// relOffset is relative to the segment's base offset; all big-endian. Both
// are sparse: after more than index.interval.bytes of log since the last
// entry, the next batch gets an entry. An offset entry maps that batch's
// last offset to the file position where the batch starts. A time entry is
// (largest timestamp so far in the segment, last offset of the batch that
// has it); entries only ever grow in timestamp, and a final entry is added
// when the segment is rolled or closed, so the last entry gives the
// segment's largest timestamp (what retention.ms compares).
//
// Gregor keeps the indexes in memory and writes the files when a segment is
// rolled or closed; the active segment's files are stale while it is being
// written. That is safe because recovery always rescans the active segment
// after a crash and rebuilds its indexes. Index files are trimmed to their
// entries (Kafka preallocates and trims them too); a full index
// (segment.index.bytes) rolls the segment.
//
// # Producer snapshots (.snapshot)
//
// Kafka's snapshot format, version 1 (all big-endian):
//
//	version int16 = 1 | crc uint32 | count int32 | count × entry (46 bytes)
//	entry = producerId int64, epoch int16, lastSequence int32,
//	        lastOffset int64, offsetDelta int32, timestamp int64,
//	        coordinatorEpoch int32 (of the producer's last marker, -1 if none),
//	        currentTxnFirstOffset int64 (its open transaction's first
//	        offset, -1 if none: what rebuilds the last stable offset)
//	crc   = CRC32C of everything after the crc field
//
// Kafka writes one entry per producer (its last batch). Gregor writes one
// entry per retained batch (up to 5, oldest first) so that duplicate
// detection of every in-flight batch survives a restart; a producer with an
// epoch but no batch yet gets one entry with lastSequence and lastOffset -1.
// Snapshots are written at every roll (named by the new segment's base
// offset) and at Close (named by the log end offset); the newest three are
// kept.
//
// # Transactions (.txnindex; see txn.go)
//
// A transaction ends on a partition with a control batch (attributes
// transactional|control, one record: key version int16 0, type int16 0
// ABORT / 1 COMMIT; value version int16 0, coordinatorEpoch int32). Each
// ABORT is listed in the .txnindex of the segment holding its marker, in
// Kafka's 34-byte entries: version int16 (0), producerId int64,
// firstOffset int64, lastOffset int64 (the marker), lastStableOffset int64.
// The file is rewritten at each abort (no fsync) and at roll and close;
// recovery rebuilds the entries at and above the producer snapshot it
// replays from, and trusts the files below.
//
// # Preallocation (LogConfig.Preallocate, default true)
//
// Kafka's preallocate only sets the file length. Gregor instead zero-fills
// the active segment in 1 MiB steps just ahead of the writer, so the data
// write lands in page-cache pages and disk blocks that already exist and in
// a file whose size does not change. On the target VM (slow page-cache page
// allocation) that made fsync-per-append ("flush.messages=1") appends
// markedly faster and did not slow plain appends; see the benchmarks in
// bench_test.go. The zeros past the data are cut off when the segment is
// rolled or closed; after a crash, recovery treats them as a torn tail and
// truncates them (logged at Info when the tail is all zeros). While a
// segment is active a Kafka tool reading it sees up to 1 MiB of zeros after
// the last batch, as with Kafka's own preallocate.
//
// # Durability and recovery
//
// Append returns after write(2). WaitDurable provides group commit: one
// syncer goroutine per Store fsyncs (fdatasync) every log with waiters once
// per round and releases all of them; the recovery point then moves to the
// log end offset seen before the fsync. flush.messages and flush.ms trigger
// the same fsync. With SetDurableHighWatermark(true) (the broker's
// gregor.durability=fsync) the high watermark is the recovery point, so
// readers never see a record a crash can take back; every append then asks
// the syncer for a round without waiting, so records become readable one
// group-commit round after their append.
//
// A failed write or fsync (EIO, ENOSPC, ...) takes the log dir offline,
// as Kafka does: appends, reads and WaitDurable return ErrStorageFailed
// from then on, Store.Failed is closed, and Close flushes nothing and does
// not write the clean-shutdown marker. Running out of file descriptors
// (EMFILE, ENFILE) is not a failure: that one operation returns
// ErrTooManyOpenFiles and the log stays as it was (a roll creates the new
// segment before it finishes the old one).
//
// Open after a clean shutdown trusts the files (index sanity checks, plus a
// walk of the last segment's tail); after a crash it rescans from the
// segment holding the recovery point, truncates at the first invalid batch
// and deletes later segments. See recover.go. Concurrency rules are at the
// top of log.go.
package storage
