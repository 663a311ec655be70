//go:build !linux

package replication

import "net"

// setQuickAck: only Linux has TCP_QUICKACK.
func setQuickAck(net.Conn) {}
