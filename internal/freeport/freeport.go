// Package freeport picks loopback ports for servers that are started (and
// restarted) by address, as tests and the embedded cluster do.
//
// A port the kernel hands out for ":0" comes from the ephemeral range,
// where the next outgoing connection of any process on the machine may
// take it between the pick and the listen (or between a kill -9 and the
// restart). Ports here are picked at random below the ephemeral range and
// checked free at the time of the pick.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low and high bound the ports picked when the ephemeral range cannot be
// read; Linux's default ephemeral range starts at 32768.
const (
	low  = 20000
	high = 32000
)

// Addr returns "127.0.0.1:port" for a port that was free a moment ago.
func Addr() (string, error) {
	hi := high
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n-1 < hi && n-1 > low+1000 {
				hi = n - 1
			}
		}
	}
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(low+rand.IntN(hi-low)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr, nil
	}
	// Fall back on the kernel's pick.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("freeport: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
