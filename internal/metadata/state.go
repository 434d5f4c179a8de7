package metadata

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// State holds the current Image and is the metadata quorum's state
// machine: it applies each committed batch, and snapshots and restores the
// whole image. Readers call Image() and keep the result as long as they
// like; it never changes.
type State struct {
	cur atomic.Pointer[Image]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after each applied batch
}

// NewState starts from the empty image.
func NewState() *State {
	s := &State{changed: make(chan struct{})}
	s.cur.Store(Empty())
	return s
}

// Image returns the current image.
func (s *State) Image() *Image { return s.cur.Load() }

// Changed returns a channel closed at the next change of the image.
func (s *State) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *State) publish(im *Image) {
	s.cur.Store(im)
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Apply decodes and applies one committed batch. A batch that does not
// decode or apply changes nothing; every voter reaches the same verdict,
// since they apply the same batches to the same image.
func (s *State) Apply(index uint64, data []byte) error {
	recs, err := DecodeBatch(data)
	if err != nil {
		return err
	}
	next, err := s.Image().Apply(index, recs)
	if err != nil {
		return err
	}
	s.publish(next)
	return nil
}

// Snapshot encodes the current image as one batch of records.
func (s *State) Snapshot() ([]byte, error) {
	im := s.Image()
	data, err := EncodeBatch(im.Records())
	if err != nil {
		return nil, err
	}
	// The offset rides in front, so Restore knows where the image is from.
	out := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint64(out, im.Offset)
	return append(out, data...), nil
}

// Restore replaces the image with a snapshot's.
func (s *State) Restore(data []byte) error {
	if len(data) < 8 {
		return ErrBadRecord
	}
	recs, err := DecodeBatch(data[8:])
	if err != nil {
		return err
	}
	im, err := Empty().Apply(binary.BigEndian.Uint64(data), recs)
	if err != nil {
		return err
	}
	s.publish(im)
	return nil
}
