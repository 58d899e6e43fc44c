package health

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// selfDial dials 127.0.0.1:port from that same port: what a connect to a port nobody
// listens on does when the kernel picks that port as its source, made certain.
func selfDial(port int) dialFunc {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
	return d.DialContext
}

// freePort returns a loopback port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// TestNoSelfConnect: a connection to itself is refused as "connection refused", and
// the port is free at once for the agent to listen on. Without the guard the kernel
// keeps the closed connection in TIME_WAIT and the agent's bind fails (the control).
func TestNoSelfConnect(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	conn, err := noSelfConnect(selfDial(port))(context.Background(), "tcp", addr)
	if err == nil {
		conn.Close()
		t.Fatal("a connection to itself was kept")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || describeRequestError(err) != "connection refused" {
		t.Errorf("error %v (%q), want connection refused", err, describeRequestError(err))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the agent could not listen after the guarded self-connect: %v", err)
	}
	ln.Close()

	// The control: the plain dialer's self-connect, closed, holds the port.
	port = freePort(t)
	addr = "127.0.0.1:" + strconv.Itoa(port)
	conn, err = selfDial(port)(context.Background(), "tcp", addr)
	if err != nil {
		t.Skipf("this kernel refuses a self-connect (%v): nothing to guard against here", err)
	}
	conn.Close()
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Log("control: this kernel let the agent listen after a plain self-connect too")
	} else {
		t.Logf("control: after a plain self-connect, listen fails: %v", err)
	}
}
