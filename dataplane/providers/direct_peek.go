//go:build linux || darwin

package providers

import "syscall"

// alive reports whether an idle connection can carry another request: the upstream has neither
// closed it (a keep-alive timeout, a restart) nor sent anything unasked. net/http learns that
// from the read loop it keeps on every idle connection; a peek costs one system call instead.
// A request written to a connection the upstream already closed could not be told apart from
// one the upstream received and then failed, and so could not be sent again.
func (pc *directConn) alive() bool {
	if pc.raw == nil {
		return true
	}
	pc.peeked = nil
	if err := pc.raw.Read(pc.peek); err != nil {
		return false
	}
	return pc.peeked == syscall.EAGAIN // nothing to read, and not closed
}

// peekFD is the raw read of alive: it never waits (MSG_DONTWAIT), so it is done after one try.
func (pc *directConn) peekFD(fd uintptr) bool {
	var b [1]byte
	_, _, pc.peeked = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true
}
