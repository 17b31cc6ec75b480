package main

import (
	"errors"
	"io"
	"log"
	"net"
)

// serveTCPEcho echoes each connection until the client half-closes, then
// half-closes in turn, so a client can tell "all echoed" from a cut
// connection.
func serveTCPEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Printf("testapp: tcp echo accept: %v", err)
			continue
		}
		go func() {
			defer c.Close()
			if _, err := io.Copy(c, c); err != nil {
				log.Printf("testapp: tcp echo: %v", err)
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				if err := tc.CloseWrite(); err != nil {
					log.Printf("testapp: tcp echo half-close: %v", err)
				}
			}
		}()
	}
}

// serveUDPEcho sends every datagram back to where it came from.
func serveUDPEcho(pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Printf("testapp: udp echo read: %v", err)
			continue
		}
		if _, err := pc.WriteTo(buf[:n], addr); err != nil {
			log.Printf("testapp: udp echo reply to %s: %v", addr, err)
		}
	}
}
