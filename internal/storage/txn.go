package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"slices"
)

// Transactions in the log (KIP-98).
//
// A producer's transaction on this partition opens with its first
// transactional batch and ends with a control batch holding one COMMIT or
// ABORT marker (AppendMarker; a partition leader writes it when the
// transaction coordinator says so). Producer state (producer.go) keeps each
// open transaction's first offset; the smallest of them is the first
// unstable offset, and the last stable offset (LSO) is
// min(high watermark, first unstable offset): a read_committed consumer
// reads below it only.
//
// Aborted transactions are listed per segment, in the segment holding the
// ABORT marker, and kept in the segment's .txnindex file in Kafka's format
// (34-byte entries, big-endian):
//
//	version int16 (0) | producerId int64 | firstOffset int64 |
//	lastOffset int64 (the marker's offset) | lastStableOffset int64
//
// A read_committed fetch returns them (AbortedTxns) so the consumer drops
// the aborted batches it receives. Like the other indexes, the file is
// written when the segment is rolled or closed; after a crash the entries
// at and above the newest producer snapshot are rebuilt by the replay
// that rebuilds producer state (loadProducers), the snapshot carrying each
// open transaction's first offset.

const (
	extTxnIndex       = ".txnindex"
	txnIndexEntrySize = 34

	controlAbort  = 0
	controlCommit = 1
)

// AbortedTxn is one aborted transaction of a partition.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64 // the ABORT marker's offset
	LastStableOffset int64 // the LSO once the marker was written
}

// completedTxn is a transaction a marker ended.
type completedTxn struct {
	pid         int64
	first, last int64
	abort       bool
}

// txnMarker is the decoded record of a control batch.
type txnMarker struct {
	valid            bool
	commit           bool
	coordinatorEpoch int32
}

// parseMarker decodes the single record of an uncompressed control batch:
// key = version int16 | type int16 (0 ABORT, 1 COMMIT), value = version
// int16 | coordinatorEpoch int32. Anything else (unknown control types,
// a damaged record) is not a marker.
func parseMarker(batch []byte) txnMarker {
	if len(batch) <= batchHeaderSize || batch[offAttributes+1]&attrCompressionMask != 0 {
		return txnMarker{}
	}
	b := batch[batchHeaderSize:]
	ok := true
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			ok = false
			return 0
		}
		b = b[n:]
		return v
	}
	varint() // record length
	if len(b) < 1 {
		return txnMarker{}
	}
	b = b[1:] // attributes
	varint()  // timestamp delta
	varint()  // offset delta
	if klen := varint(); !ok || klen != 4 || len(b) < 4 {
		return txnMarker{}
	}
	typ := int16(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	m := txnMarker{valid: typ == controlAbort || typ == controlCommit, commit: typ == controlCommit, coordinatorEpoch: -1}
	if vlen := varint(); ok && vlen >= 6 && len(b) >= 6 {
		m.coordinatorEpoch = int32(binary.BigEndian.Uint32(b[2:]))
	}
	return m
}

// markerBatch builds a control batch with one marker record, Kafka's
// EndTransactionMarker: key v0 (version, type), value v0 (version,
// coordinatorEpoch).
func markerBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	typ := uint16(controlAbort)
	if commit {
		typ = controlCommit
	}
	var rec []byte
	rec = append(rec, 0)              // attributes
	rec = binary.AppendVarint(rec, 0) // timestamp delta
	rec = binary.AppendVarint(rec, 0) // offset delta
	rec = binary.AppendVarint(rec, 4) // key length
	rec = binary.BigEndian.AppendUint16(rec, 0)
	rec = binary.BigEndian.AppendUint16(rec, typ)
	rec = binary.AppendVarint(rec, 6) // value length
	rec = binary.BigEndian.AppendUint16(rec, 0)
	rec = binary.BigEndian.AppendUint32(rec, uint32(coordinatorEpoch))
	rec = binary.AppendVarint(rec, 0) // headers

	b := make([]byte, batchHeaderSize, batchHeaderSize+len(rec)+2)
	b = binary.AppendVarint(b, int64(len(rec)))
	b = append(b, rec...)
	be := binary.BigEndian
	be.PutUint32(b[offBatchLength:], uint32(len(b)-logOverhead))
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], attrTransactional|attrControl)
	be.PutUint32(b[offLastOffsetDelta:], 0)
	be.PutUint64(b[offBaseTimestamp:], uint64(ts))
	be.PutUint64(b[offMaxTimestamp:], uint64(ts))
	be.PutUint64(b[offProducerID:], uint64(pid))
	be.PutUint16(b[offProducerEpoch:], uint16(epoch))
	be.PutUint32(b[offBaseSequence:], 0xffffffff)
	be.PutUint32(b[offRecordCount:], 1)
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

// AppendMarker ends producer pid's transaction on this partition with a
// COMMIT or ABORT marker, as a partition leader does for WriteTxnMarkers.
// A marker whose epoch is older than the producer's fails with
// ErrInvalidProducerEpoch; a marker for a producer with no open
// transaction is written all the same (the coordinator retries markers).
// Wait for it like any append (WaitHighWatermark / WaitDurable).
func (l *Log) AppendMarker(pid int64, epoch int16, commit bool, coordinatorEpoch int32) (AppendResult, error) {
	if pid < 0 || epoch < 0 {
		// A marker ends a transactional producer's transaction: such a
		// producer has an id and an epoch. (Without one, no producer
		// state would record the marker.)
		return AppendResult{}, fmt.Errorf("%w: marker for producer id %d epoch %d", ErrInvalidProducerIDMapping, pid, epoch)
	}
	records := markerBatch(pid, epoch, commit, coordinatorEpoch, l.store.now().UnixMilli())
	h := parseHeader(records)
	res, err := func() (AppendResult, error) {
		l.appendMu.Lock()
		defer l.appendMu.Unlock() // even if a bug panics below: a held appendMu wedges the partition
		var was producerState
		if st := l.producers[pid]; st != nil {
			was = *st
			if coordinatorEpoch < st.coordEpoch {
				return AppendResult{}, fmt.Errorf("%w: marker of coordinator epoch %d, producer %d saw %d",
					ErrTransactionCoordinatorFenced, coordinatorEpoch, pid, st.coordEpoch)
			}
		}
		res, _, err := l.appendLocked(records, []batchHeader{h}, false)
		if err != nil {
			return res, err
		}
		if st := l.producers[pid]; st != nil {
			st.coordEpoch = coordinatorEpoch
		}
		if was.txnOpen {
			l.endTxnLocked(completedTxn{pid: pid, first: was.txnFirst, last: res.BaseOffset, abort: !commit})
		}
		return res, nil
	}()
	if err != nil {
		return res, err
	}
	l.afterAppend()
	return res, nil
}

// endTxnLocked records a transaction a marker ended: an aborted one goes
// to the marker's segment's list, and the first unstable offset moves.
// Requires appendMu.
func (l *Log) endTxnLocked(t completedTxn) {
	unstable := l.firstUnstableLocked()
	l.mu.Lock()
	var sg *segment
	if t.abort {
		lso := min(unstable, t.last+1)
		sg = l.addAbortedLocked(AbortedTxn{ProducerID: t.pid, FirstOffset: t.first, LastOffset: t.last, LastStableOffset: lso})
	}
	l.unstable = unstable
	l.mu.Unlock()
	l.saveAborted(sg)
}

// saveAborted writes sg's .txnindex as it is now, without fsync, as Kafka
// appends to it at each abort: Kafka's tools read it from a live log. A
// crash loses nothing that matters: recovery rebuilds the entries. Requires
// appendMu; sg nil does nothing.
func (l *Log) saveAborted(sg *segment) {
	if sg == nil {
		return
	}
	if err := sg.writeTxnIndex(sg.aborted, false); err != nil {
		l.logger.Warn("cannot write the transaction index", "file", segmentPath(sg.dir, sg.base, extTxnIndex), "err", err)
	}
}

// addAbortedLocked files an aborted transaction under the segment holding
// its marker, which it returns (nil if it was known already). Requires mu
// (write).
func (l *Log) addAbortedLocked(a AbortedTxn) *segment {
	i := len(l.segs) - 1
	for i > 0 && l.segs[i].base > a.LastOffset {
		i--
	}
	sg := l.segs[i]
	if n := len(sg.aborted); n > 0 && sg.aborted[n-1].LastOffset >= a.LastOffset {
		return nil // known already (a replay over entries loaded from the file)
	}
	sg.aborted = append(sg.aborted, a)
	return sg
}

// firstUnstableLocked is the smallest first offset of an open transaction,
// MaxInt64 if none is open. Requires appendMu.
func (l *Log) firstUnstableLocked() int64 {
	first := int64(math.MaxInt64)
	for _, st := range l.producers {
		if st.txnOpen && st.txnFirst < first {
			first = st.txnFirst
		}
	}
	return first
}

// lsoLocked is the last stable offset. Requires mu.
func (l *Log) lsoLocked() int64 {
	return max(l.logStart, min(l.hwLocked(), l.unstable))
}

// LastStableOffset is the offset below which every transaction is decided
// and the high watermark has passed: where read_committed reads stop.
func (l *Log) LastStableOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lsoLocked()
}

// AbortedTxns lists the aborted transactions a read_committed fetch of
// [from, to) must report: those with data in the range, that is a marker
// at or after from and a first offset before to.
func (l *Log) AbortedTxns(from, to int64) []AbortedTxn {
	l.mu.RLock()
	segs := l.segs
	lists := make([][]AbortedTxn, 0, 2)
	i := len(segs) - 1
	for i > 0 && segs[i].base > from {
		i--
	}
	for ; i < len(segs); i++ {
		if len(segs[i].aborted) > 0 {
			lists = append(lists, segs[i].aborted)
		}
	}
	l.mu.RUnlock()
	var out []AbortedTxn
	for _, list := range lists {
		for _, a := range list {
			if a.LastOffset >= from && a.FirstOffset < to {
				out = append(out, a)
			}
		}
	}
	return out
}

// TxnOpen reports whether producer pid has a transaction open on this
// partition in epoch (the partition was verified to be in it then).
func (l *Log) TxnOpen(pid int64, epoch int16) bool {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	st := l.producers[pid]
	return st != nil && st.txnOpen && st.epoch == epoch
}

// ReadRangeCommitted is ReadRange for read_committed consumers: it stops
// at the last stable offset instead of the high watermark.
func (l *Log) ReadRangeCommitted(offset int64, maxBytes int) (FileRange, ReadResult, error) {
	return l.readRange(offset, maxBytes, boundLSO, false)
}

// AppendCoordinator appends batches a coordinator wrote on a producer's
// behalf (transactional offset commits in __consumer_offsets): they carry
// a producer id and epoch but no sequence (Kafka's coordinator origin).
func (l *Log) AppendCoordinator(records []byte) (AppendResult, error) {
	return l.append(records, true)
}

func encodeTxnIndex(list []AbortedTxn) []byte {
	b := make([]byte, 0, len(list)*txnIndexEntrySize)
	for _, a := range list {
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastStableOffset))
	}
	return b
}

// loadTxnIndex reads the segment's .txnindex, keeping the well-formed
// entries whose marker lies in the segment's data (up to lastOff).
func (s *segment) loadTxnIndex() {
	b, err := readFile(s.fsys, segmentPath(s.dir, s.base, extTxnIndex))
	if err != nil {
		return
	}
	var list []AbortedTxn
	for ; len(b) >= txnIndexEntrySize; b = b[txnIndexEntrySize:] {
		if binary.BigEndian.Uint16(b) != 0 {
			break
		}
		a := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
		}
		if a.LastOffset < s.base || a.LastOffset > s.lastOff || a.FirstOffset > a.LastOffset ||
			(len(list) > 0 && list[len(list)-1].LastOffset >= a.LastOffset) {
			break
		}
		list = append(list, a)
	}
	s.aborted = list
}

// writeTxnIndex stores the segment's aborted transactions in its
// .txnindex; a segment without any has no file (as Kafka leaves it empty).
func (s *segment) writeTxnIndex(list []AbortedTxn, sync bool) error {
	path := segmentPath(s.dir, s.base, extTxnIndex)
	if len(list) == 0 {
		if err := s.fsys.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	buf := encodeTxnIndex(list)
	f, err := s.fsys.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(buf, 0)
	if err == nil {
		err = f.Truncate(int64(len(buf)))
	}
	if err == nil && sync {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// dropAbortedFrom forgets the aborted transactions whose marker is at or
// after offset (truncation, or a replay about to rebuild them). Requires
// mu (write).
func (l *Log) dropAbortedFrom(offset int64) {
	for _, sg := range l.segs {
		if n := len(sg.aborted); n > 0 && sg.aborted[n-1].LastOffset >= offset {
			k := slices.IndexFunc(sg.aborted, func(a AbortedTxn) bool { return a.LastOffset >= offset })
			sg.aborted = slices.Clip(sg.aborted[:k])
		}
	}
}
