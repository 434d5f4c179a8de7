//go:build !unix

package broker

// nofileLimit is unknown here: no file-descriptor cap on connections.
func nofileLimit() int { return 0 }
