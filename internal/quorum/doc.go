// Package quorum is the metadata quorum: the Raft log that Gregor's
// controllers replicate, in the role of Kafka's KRaft quorum. Consensus
// itself is go.etcd.io/raft/v3 (the algorithm only); this package writes
// what that library leaves to its user, following the Ready contract of its
// doc.go: the log storage and its write-ahead log, snapshots, the transport
// between voters, and the loop that ties them together.
//
// # The raft loop
//
// One goroutine per Node (run) owns the raft.Node's Ready channel, the
// storage, the applied index and the snapshot schedule. For each Ready
// batch, in this order:
//
//  1. save: a received snapshot (its file, then a WAL record), the new
//     entries and the hard state are written to the WAL, with one fsync;
//  2. only then are the batch's messages handed to the transport, so no
//     vote or append acknowledgment leaves the node before it is durable;
//  3. committed entries are applied to the StateMachine, in log order;
//  4. every SnapshotEntries applied entries the state machine's image is
//     written as a snapshot and the WAL is rotated.
//
// Proposals carry the proposing node's id and a sequence number ahead of
// the caller's bytes, so Propose can wait for its own entry to be applied
// and return the state machine's result.
//
// # On-disk layout
//
// The directory (by default `__cluster_metadata-0` in the first log dir, the
// name Kafka uses for its metadata log) holds:
//
//	wal-<seq, 16 hex digits>.log     the write-ahead log, newest seq last
//	snap-<index, 16 hex digits>.snap the newest snapshots (two are kept)
//
// A WAL file is a sequence of records:
//
//	+----------------+----------------+------+---------------------+
//	| length: uint32 | crc32c: uint32 | type | payload (protobuf)  |
//	+----------------+----------------+------+---------------------+
//	  big-endian; length covers type + payload, crc32c (Castagnoli) too
//
// with type 1 = raftpb.Entry, 2 = raftpb.HardState, 3 = raftpb.SnapshotMetadata.
// Every file begins with a type-3 record naming the index the file
// continues from; later entries replace earlier ones at the same index (a
// new leader's log wins), and the last hard state counts. A rotation writes
// the new file whole (kept entries, hard state, later entries), fsyncs it
// and the directory, and only then deletes older files, so a crash leaves
// one complete generation or the other.
//
// A snapshot file is one record without a type byte: length, CRC32C, then a
// raftpb.Snapshot (metadata and the state machine's image). It is written
// to a temporary name, fsynced, renamed and the directory fsynced.
//
// Recovery: the newest snapshot file that checks out is restored, then the
// WAL files are replayed. A torn or corrupt record at the very end of the
// newest WAL file is a write a crash interrupted, which nobody was told was
// durable: the file is cut back to the last whole record. Damage anywhere
// else is ErrCorrupt and the node does not start. Start then applies the
// entries up to the persisted commit index to the state machine before it
// returns (replay), so its caller sees at least everything the node had
// applied before it stopped; the raft loop skips those entries when raft
// delivers them again. A quorum of one campaigns as soon as its
// configuration is applied instead of waiting out an election timeout.
//
// # Transport
//
// TCPTransport: each voter dials each other voter and sends the 8-byte
// preamble "GRGRAFT1" and its node id, then frames of a uint32 length and a
// raftpb.Message. Each peer has a bounded queue; what cannot be sent (queue
// full, dial or write failure) is dropped and reported to raft as
// unreachable, which raft recovers from. The controller listener carries
// no authentication yet: it must only be reachable by controllers.
package quorum
