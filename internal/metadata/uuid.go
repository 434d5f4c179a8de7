package metadata

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// UUID is a cluster, topic, directory or incarnation id. It prints as
// Kafka's Uuid.toString does (URL-safe base64 without padding), in JSON
// too.
type UUID [16]byte

// NewUUID returns a random (version 4) UUID that is neither of the ids
// Kafka reserves (all zeros, and the "one" id 0...01).
func NewUUID() UUID {
	for {
		var u UUID
		_, _ = rand.Read(u[:])
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		if u != (UUID{}) && u != (UUID{15: 1}) {
			return u
		}
	}
}

// ParseUUID reads Kafka's text form of a UUID.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	err := u.UnmarshalText([]byte(s))
	return u, err
}

func (u UUID) String() string { return base64.RawURLEncoding.EncodeToString(u[:]) }

// MarshalText implements encoding.TextMarshaler.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (u *UUID) UnmarshalText(b []byte) error {
	if base64.RawURLEncoding.EncodedLen(16) != len(b) {
		return fmt.Errorf("metadata: %q is not a UUID", b)
	}
	n, err := base64.RawURLEncoding.Decode(u[:], b)
	if err != nil || n != 16 {
		return fmt.Errorf("metadata: %q is not a UUID", b)
	}
	return nil
}
