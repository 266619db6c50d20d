//go:build !(linux || darwin)

package providers

// alive cannot peek here: an idle connection is taken as open until a call finds otherwise.
func (pc *directConn) alive() bool { return true }

func (pc *directConn) peekFD(uintptr) bool { return true }
