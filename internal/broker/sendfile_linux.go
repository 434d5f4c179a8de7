package broker

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/gregorhq/gregor/internal/storage"
)

// sendFileRange writes fr's bytes to nc straight from the segment file
// (sendfile(2) at an explicit offset, so concurrent readers of one file
// never share a file position), honouring nc's write deadline. handled is
// false when nc or fr cannot take this path (not a TCP socket, not an OS
// file); nothing was written then.
func sendFileRange(nc net.Conn, fr storage.FileRange) (handled bool, err error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok || fr.File == nil {
		return false, nil
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return false, nil
	}
	src, err := fr.File.SyscallConn()
	if err != nil {
		return false, nil
	}
	off, left := fr.Pos, fr.Size
	var serr, werr error
	cerr := src.Control(func(sfd uintptr) {
		werr = dst.Write(func(dfd uintptr) bool {
			for left > 0 {
				n, err := syscall.Sendfile(int(dfd), int(sfd), &off, min(left, 1<<30))
				if n > 0 {
					left -= n
				}
				switch {
				case errors.Is(err, syscall.EAGAIN):
					return false // wait until the socket is writable
				case errors.Is(err, syscall.EINTR):
					continue
				case err != nil:
					serr = err
					return true
				case n == 0:
					serr = io.ErrUnexpectedEOF // the file is shorter than the range
					return true
				}
			}
			return true
		})
	})
	return true, errors.Join(serr, werr, cerr)
}
