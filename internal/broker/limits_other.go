//go:build !unix

package broker

func openFileLimit() uint64 { return 0 }
