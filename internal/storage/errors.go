package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers check them with errors.Is; the broker maps them to
// Kafka error codes. Returned errors usually wrap one of these with detail.
var (
	// ErrCorruptMessage: a batch from a client failed validation (CRC mismatch,
	// bad lengths, inconsistent counts, trailing partial batch).
	// Kafka: CORRUPT_MESSAGE (2).
	ErrCorruptMessage = errors.New("storage: corrupt message")
	// ErrMessageTooLarge: a batch is larger than max.message.bytes.
	// Kafka: MESSAGE_TOO_LARGE (10).
	ErrMessageTooLarge = errors.New("storage: message too large")
	// ErrOffsetOutOfRange: a read or DeleteRecords offset outside
	// [LogStartOffset, LogEndOffset]. Kafka: OFFSET_OUT_OF_RANGE (1).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrOutOfOrderSequence: an idempotent producer skipped or repeated a
	// sequence number. Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
	ErrOutOfOrderSequence = errors.New("storage: out of order sequence number")
	// ErrInvalidProducerEpoch: the batch's producer epoch is older than the
	// current one for its producer id. Kafka: INVALID_PRODUCER_EPOCH (47).
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")
	// ErrInvalidTimestamp is reserved for message.timestamp.*.ms checks, which
	// are not implemented yet. Kafka: INVALID_TIMESTAMP (32).
	ErrInvalidTimestamp = errors.New("storage: invalid timestamp")
	// ErrUnsupportedMagic: a batch whose magic byte is not 2.
	// Kafka: UNSUPPORTED_FOR_MESSAGE_FORMAT (43) or CORRUPT_MESSAGE (2).
	ErrUnsupportedMagic = errors.New("storage: unsupported record batch magic")
	// ErrInvalidTxnState: a producer with an open transaction sent a
	// non-transactional batch (Kafka's INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("storage: invalid transaction state")
	// ErrTransactionCoordinatorFenced: a marker from a coordinator older
	// than the one the partition has seen (TRANSACTION_COORDINATOR_FENCED).
	ErrTransactionCoordinatorFenced = errors.New("storage: transaction coordinator fenced")
	// ErrInvalidProducerIDMapping: a transaction marker for no producer
	// (a negative producer id or epoch). Kafka: INVALID_PRODUCER_ID_MAPPING (49).
	ErrInvalidProducerIDMapping = errors.New("storage: invalid producer id mapping")
	// ErrClosed: the Store or Log was closed (or the partition deleted).
	ErrClosed = errors.New("storage: closed")
	// ErrCorruption: data already on disk failed validation when read back.
	// Distinct from ErrCorruptMessage, which is about client input.
	ErrCorruption = errors.New("storage: on-disk corruption")

	// The errors below are additions to the agreed API.

	// ErrInvalidRecord: a batch that is well formed but semantically invalid
	// (empty record set, recordCount != lastOffsetDelta+1, negative sequence
	// for a producer id). It wraps ErrCorruptMessage, so code that only knows
	// ErrCorruptMessage still matches; a broker that wants Kafka's exact code
	// can map it to INVALID_RECORD (87) first.
	ErrInvalidRecord = fmt.Errorf("%w: invalid record", ErrCorruptMessage)
	// ErrRecordListTooLarge: one Append is larger than segment.bytes. It wraps
	// ErrMessageTooLarge; Kafka's code is RECORD_LIST_TOO_LARGE (18).
	ErrRecordListTooLarge = fmt.Errorf("%w: record list larger than segment.bytes", ErrMessageTooLarge)
	// ErrStorageFailed: a write or fsync failed (EIO, ENOSPC, ...); the log
	// dir is offline from then on, as Kafka takes a log dir offline: it
	// refuses appends, reads and durability waits (Store.Failed).
	// Kafka: KAFKA_STORAGE_ERROR (56).
	ErrStorageFailed = errors.New("storage: log dir failed")
	// ErrTooManyOpenFiles: an operation could not open a file because the
	// process or the system ran out of file descriptors (EMFILE, ENFILE).
	// It is transient: only that operation failed, nothing was written and
	// the log dir stays online, so the same request can succeed once
	// descriptors are free. The broker answers KAFKA_STORAGE_ERROR (56),
	// which every client treats as retriable.
	ErrTooManyOpenFiles = errors.New("storage: too many open files")
	// ErrLogExists: Create for a partition that already exists.
	ErrLogExists = errors.New("storage: partition already exists")
)
