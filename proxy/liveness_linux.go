package proxy

import (
	"syscall"
	"unsafe"
)

// poll(2)'s event bits, which package syscall does not name.
const (
	pollErr   = 0x8
	pollHUP   = 0x10
	pollRDHUP = 0x2000
)

// hungUp reports whether the peer of socket fd has shut its side down
// (a FIN came), whatever bytes it sent before wait unread: ppoll(2) with
// POLLRDHUP and no timeout, as the event loop's EPOLLRDHUP.
func hungUp(fd uintptr) bool {
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{int32(fd), pollRDHUP, 0}
	var ts syscall.Timespec
	n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return errno == 0 && n == 1 && pfd.revents&(pollRDHUP|pollHUP|pollErr) != 0
}
