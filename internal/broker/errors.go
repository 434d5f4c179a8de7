package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregorhq/gregor/internal/storage"
)

// errCode maps an error from storage (or nil) to a Kafka error code.
// Anything unexpected is KAFKA_STORAGE_ERROR for log operations: the client
// retries and the broker log says what happened.
func errCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, storage.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, storage.ErrRecordListTooLarge):
		return kerr.RecordListTooLarge.Code
	case errors.Is(err, storage.ErrCorruptMessage):
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrMessageTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, storage.ErrTransactionCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, storage.ErrInvalidProducerIDMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, storage.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, storage.ErrUnsupportedMagic):
		// Kafka answers an unknown magic byte as a corrupt message.
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrStorageFailed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrTooManyOpenFiles):
		// Out of file descriptors fails only this request; the log dir
		// stays online. KAFKA_STORAGE_ERROR ("disk error when trying to
		// access log file") is the closest code, and every client treats it
		// as retriable (refresh metadata, retry), so the request goes
		// through once descriptors are free. An unwritten append cannot be
		// duplicated by that retry.
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrClosed), errors.Is(err, storage.ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	default:
		return kerr.KafkaStorageError.Code
	}
}

// validTopicName follows Kafka's Topic.validate: 1-249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func validTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
