package storage

import "fmt"

// KeylessError is Append's refusal of records without a key on a
// compacted log. A compacted log keeps the latest record per key, so a
// record without one could never be cleaned: Kafka refuses such records
// (INVALID_RECORD, one record error per keyless record), and so does
// Append, for the whole request, found while it validates the records
// (decompressing compressed batches once). Control batches are not
// checked: the broker writes them, always with a key.
type KeylessError struct {
	// Positions of the keyless records, counted from the first record of
	// the appended records.
	Positions []int32
}

func (e *KeylessError) Error() string {
	return fmt.Sprintf("%v: %d records without a key on a compacted log", ErrInvalidRecord, len(e.Positions))
}

// Unwrap makes a KeylessError an ErrInvalidRecord.
func (e *KeylessError) Unwrap() error { return ErrInvalidRecord }
