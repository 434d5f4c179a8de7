//go:build !unix

package broker

import "os"

// lockDir is a no-op where flock(2) does not exist: only one broker may be
// pointed at a log dir, and nothing enforces it.
func lockDir(dir string) (*os.File, error) { return nil, nil }
