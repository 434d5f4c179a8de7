package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// Idempotent-producer state: per producer id, the current epoch and the
// metadata of the last maxBatchesRetained batches, used to detect retried
// (duplicate) batches and sequence gaps. Owned by Log.appendMu.

// maxBatchesRetained is Kafka's NUM_BATCHES_TO_RETAIN: a producer has at most
// 5 requests in flight per partition, so a retry duplicates one of the last 5.
const maxBatchesRetained = 5

type batchMeta struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
	timestamp               int64 // batch maxTimestamp
}

type producerState struct {
	epoch   int16
	n       int // batches in use, oldest first
	batches [maxBatchesRetained]batchMeta
	// lastTimestamp is the maxTimestamp of the last batch (or marker), used
	// for producer id expiration like Kafka.
	lastTimestamp int64
	// The open transaction: txnOpen from the producer's first
	// transactional batch (at txnFirst) up to its COMMIT/ABORT marker.
	txnOpen  bool
	txnFirst int64
	// coordEpoch is the coordinator epoch of the last marker, -1 before one.
	coordEpoch int32
}

func (p *producerState) last() *batchMeta {
	if p.n == 0 {
		return nil
	}
	return &p.batches[p.n-1]
}

func (p *producerState) push(m batchMeta) {
	if p.n == maxBatchesRetained {
		copy(p.batches[:], p.batches[1:])
		p.n--
	}
	p.batches[p.n] = m
	p.n++
	p.lastTimestamp = m.timestamp
}

func (p *producerState) findDuplicate(epoch int16, firstSeq, lastSeq int32) *batchMeta {
	if p.epoch != epoch {
		return nil
	}
	for i := 0; i < p.n; i++ {
		if b := &p.batches[i]; b.firstSeq == firstSeq && b.lastSeq == lastSeq {
			return b
		}
	}
	return nil
}

// producerUpdate is a staged change: applied only if the whole append
// succeeds.
type producerUpdate struct {
	pid   int64
	state producerState
	isNew bool
}

// stagedProducers holds the updates of one Append. A produce request almost
// always has one batch, so a linear slice beats a map.
type stagedProducers []producerUpdate

func (s *stagedProducers) get(pid int64, producers map[int64]*producerState) *producerState {
	for i := range *s {
		if (*s)[i].pid == pid {
			return &(*s)[i].state
		}
	}
	u := producerUpdate{pid: pid}
	if cur, ok := producers[pid]; ok {
		u.state = *cur
	} else {
		u.state = producerState{epoch: -1, coordEpoch: -1}
		u.isNew = true
	}
	*s = append(*s, u)
	return &(*s)[len(*s)-1].state
}

// checkProducer validates one batch against (staged) producer state and
// stages its effect. A duplicate returns the original batch's metadata.
// assignedBase is the offset the batch will get if appended. coordinator
// is the origin of batches a coordinator writes (transactional offset
// commits): they carry no sequence, so only the epoch is checked.
func checkProducer(st *producerState, h *batchHeader, assignedBase int64, coordinator bool) (*batchMeta, error) {
	if h.producerEpoch < st.epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than the current %d",
			ErrInvalidProducerEpoch, h.producerID, h.producerEpoch, st.epoch)
	}
	if h.isControl() {
		// Transaction markers carry no sequence; they fence the epoch and
		// end the open transaction (AppendMarker).
		if h.producerEpoch != st.epoch {
			st.epoch, st.n = h.producerEpoch, 0
		}
		st.lastTimestamp = h.maxTimestamp
		st.txnOpen = false
		return nil, nil
	}
	if !h.isTransactional() && st.txnOpen {
		return nil, fmt.Errorf("%w: producer %d wrote a non-transactional batch in an open transaction",
			ErrInvalidTxnState, h.producerID)
	}
	if coordinator {
		if h.producerEpoch != st.epoch {
			st.epoch, st.n = h.producerEpoch, 0
		}
		st.lastTimestamp = h.maxTimestamp
		st.openTxn(h, assignedBase)
		return nil, nil
	}
	if h.baseSequence < 0 {
		return nil, fmt.Errorf("%w: producer %d sent sequence %d", ErrInvalidRecord, h.producerID, h.baseSequence)
	}
	firstSeq, lastSeq := h.baseSequence, h.lastSequence()
	if dup := st.findDuplicate(h.producerEpoch, firstSeq, lastSeq); dup != nil {
		d := *dup
		return &d, nil
	}
	if h.producerEpoch != st.epoch {
		// A new epoch restarts at 0, unless we know nothing about the
		// producer (e.g. its state expired or was never seen): then any
		// sequence is accepted, as Kafka does.
		if firstSeq != 0 && st.epoch != -1 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d, want 0",
				ErrOutOfOrderSequence, h.producerID, h.producerEpoch, firstSeq)
		}
		st.epoch, st.n = h.producerEpoch, 0
	} else if last := st.last(); last != nil {
		if want := addSeq(last.lastSeq, 1); firstSeq != want {
			return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, want %d",
				ErrOutOfOrderSequence, h.producerID, h.producerEpoch, firstSeq, want)
		}
	}
	st.push(batchMeta{
		firstSeq: firstSeq, lastSeq: lastSeq,
		firstOffset: assignedBase, lastOffset: assignedBase + int64(h.lastOffsetDelta),
		timestamp: h.maxTimestamp,
	})
	st.openTxn(h, assignedBase)
	return nil, nil
}

// openTxn starts the producer's transaction at a transactional batch
// based at base, unless one is open.
func (p *producerState) openTxn(h *batchHeader, base int64) {
	if h.isTransactional() && !p.txnOpen {
		p.txnOpen, p.txnFirst = true, base
	}
}

// replayProducer applies a batch read back from the log, without validation
// (Kafka's "no validation" origin for recovery and followers). For a
// control batch, marker is its COMMIT/ABORT marker; the transaction it
// ends is returned (ok false if the producer had none open).
func replayProducer(producers map[int64]*producerState, h *batchHeader, marker txnMarker) (ended completedTxn, ok bool) {
	if h.producerID < 0 {
		return ended, false
	}
	st := producers[h.producerID]
	if st == nil {
		st = &producerState{epoch: h.producerEpoch, coordEpoch: -1}
		producers[h.producerID] = st
	}
	if h.producerEpoch != st.epoch {
		st.epoch, st.n = h.producerEpoch, 0
	}
	st.lastTimestamp = h.maxTimestamp
	if h.isControl() {
		if !marker.valid {
			return ended, false
		}
		st.coordEpoch = marker.coordinatorEpoch
		if !st.txnOpen {
			return ended, false
		}
		st.txnOpen = false
		return completedTxn{pid: h.producerID, first: st.txnFirst, last: h.baseOffset, abort: !marker.commit}, true
	}
	if h.baseSequence >= 0 {
		st.push(batchMeta{
			firstSeq: h.baseSequence, lastSeq: h.lastSequence(),
			firstOffset: h.baseOffset, lastOffset: h.lastOffset(),
			timestamp: h.maxTimestamp,
		})
	}
	st.openTxn(h, h.baseOffset)
	return ended, false
}

// Producer snapshot files use Kafka's layout (ProducerStateManager, snapshot
// version 1), so kafka-dump-log can print them:
//
//	version int16 (=1) | crc uint32 (CRC32C of what follows) | count int32 |
//	count × { producerId int64, epoch int16, lastSequence int32,
//	          lastOffset int64, offsetDelta int32, timestamp int64,
//	          coordinatorEpoch int32, currentTxnFirstOffset int64 }
//
// Kafka writes one entry per producer (its last batch). Gregor writes one
// entry per retained batch, oldest first, so duplicate detection of all 5
// batches survives a restart; a reader that keeps the last entry per
// producer id (as Kafka's does) still gets the newest batch.
const (
	snapshotVersion   = 1
	snapshotEntrySize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8
)

func encodeSnapshot(producers map[int64]*producerState) []byte {
	pids := make([]int64, 0, len(producers))
	count := 0
	for pid, st := range producers {
		pids = append(pids, pid)
		count += max(st.n, 1)
	}
	slices.Sort(pids)
	b := make([]byte, 10, 10+count*snapshotEntrySize)
	binary.BigEndian.PutUint16(b, snapshotVersion)
	binary.BigEndian.PutUint32(b[6:], uint32(count))
	var st *producerState
	entry := func(pid int64, lastSeq int32, lastOff int64, delta int32, ts int64) {
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint16(b, uint16(st.epoch))
		b = binary.BigEndian.AppendUint32(b, uint32(lastSeq))
		b = binary.BigEndian.AppendUint64(b, uint64(lastOff))
		b = binary.BigEndian.AppendUint32(b, uint32(delta))
		b = binary.BigEndian.AppendUint64(b, uint64(ts))
		b = binary.BigEndian.AppendUint32(b, uint32(st.coordEpoch))
		txnFirst := int64(-1) // no ongoing transaction
		if st.txnOpen {
			txnFirst = st.txnFirst
		}
		b = binary.BigEndian.AppendUint64(b, uint64(txnFirst))
	}
	for _, pid := range pids {
		st = producers[pid]
		if st.n == 0 {
			entry(pid, -1, -1, 0, st.lastTimestamp)
			continue
		}
		for i := 0; i < st.n; i++ {
			m := &st.batches[i]
			entry(pid, m.lastSeq, m.lastOffset, int32(m.lastOffset-m.firstOffset), m.timestamp)
		}
	}
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], castagnoli))
	return b
}

func decodeSnapshot(b []byte) (map[int64]*producerState, error) {
	if len(b) < 10 {
		return nil, fmt.Errorf("snapshot of %d bytes", len(b))
	}
	if v := int16(binary.BigEndian.Uint16(b)); v != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d", v)
	}
	if want, got := binary.BigEndian.Uint32(b[2:]), crc32.Checksum(b[6:], castagnoli); want != got {
		return nil, fmt.Errorf("snapshot crc 0x%08x, computed 0x%08x", want, got)
	}
	count := int64(int32(binary.BigEndian.Uint32(b[6:])))
	if count < 0 || count*snapshotEntrySize != int64(len(b)-10) {
		return nil, fmt.Errorf("snapshot claims %d entries in %d bytes", count, len(b)-10)
	}
	producers := make(map[int64]*producerState)
	for p := b[10:]; len(p) > 0; p = p[snapshotEntrySize:] {
		pid := int64(binary.BigEndian.Uint64(p))
		epoch := int16(binary.BigEndian.Uint16(p[8:]))
		lastSeq := int32(binary.BigEndian.Uint32(p[10:]))
		lastOff := int64(binary.BigEndian.Uint64(p[14:]))
		delta := int32(binary.BigEndian.Uint32(p[22:]))
		ts := int64(binary.BigEndian.Uint64(p[26:]))
		coordEpoch := int32(binary.BigEndian.Uint32(p[34:]))
		txnFirst := int64(binary.BigEndian.Uint64(p[38:]))
		st := producers[pid]
		if st == nil || st.epoch != epoch {
			st = &producerState{epoch: epoch}
			producers[pid] = st
		}
		st.lastTimestamp = ts
		st.coordEpoch = coordEpoch
		st.txnOpen, st.txnFirst = txnFirst >= 0, max(txnFirst, 0)
		if lastOff < 0 || delta < 0 {
			continue // an epoch with no batch yet
		}
		st.push(batchMeta{
			firstSeq: int32((int64(lastSeq) - int64(delta) + 1<<31) % (1 << 31)), lastSeq: lastSeq,
			firstOffset: lastOff - int64(delta), lastOffset: lastOff,
			timestamp: ts,
		})
	}
	return producers, nil
}
