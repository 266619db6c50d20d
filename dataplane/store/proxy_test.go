package store_test

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// redisProxy forwards TCP connections to a Redis server and breaks them as a network or a
// failover would: reset every client connection at once, or (armed) lose the next reply the
// server sends on each connection, after the server has run the command, by closing the
// client's side (with a FIN or an RST) or holding the reply until the client gives up on it.
type redisProxy struct {
	l       net.Listener
	mu      sync.Mutex
	pairs   []*proxyPair
	scripts atomic.Int64 // script calls the clients sent
}

type proxyPair struct {
	c, up net.Conn
	drop  atomic.Int32
	gone  chan struct{} // the client closed its side
}

const (
	dropFIN int32 = iota + 1
	dropRST
	dropHold
)

var evalshaArg = []byte("$7\r\nevalsha\r\n")

// startRedisProxy listens on 127.0.0.1 and forwards each connection to target until t ends.
func startRedisProxy(t *testing.T, target string) *redisProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &redisProxy{l: l}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		for _, pp := range p.pairs {
			_ = pp.c.Close()
			_ = pp.up.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			pp := &proxyPair{c: c, up: up, gone: make(chan struct{})}
			p.mu.Lock()
			p.pairs = append(p.pairs, pp)
			p.mu.Unlock()
			wg.Go(func() { p.toServer(pp) })
			wg.Go(func() { p.toClient(pp) })
		}
	})
	return p
}

func (p *redisProxy) toServer(pp *proxyPair) {
	defer close(pp.gone)
	defer pp.up.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := pp.c.Read(buf)
		if n > 0 {
			p.scripts.Add(int64(bytes.Count(buf[:n], evalshaArg)))
			if _, werr := pp.up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *redisProxy) toClient(pp *proxyPair) {
	defer pp.c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := pp.up.Read(buf)
		if n > 0 {
			switch pp.drop.Swap(0) {
			case dropFIN:
				_ = pp.up.Close()
				return
			case dropRST:
				_ = pp.c.(*net.TCPConn).SetLinger(0)
				_ = pp.up.Close()
				return
			case dropHold:
				<-pp.gone // the client's read timed out and it closed the connection
				return
			}
			if _, werr := pp.c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// arm makes every connection open now lose its next reply.
func (p *redisProxy) arm(mode int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pairs {
		pp.drop.Store(mode)
	}
}

// reset closes every client connection with an RST, as a server or network that dropped them
// while idle would, and returns how many there were.
func (p *redisProxy) reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pairs {
		_ = pp.c.(*net.TCPConn).SetLinger(0)
		_ = pp.c.Close()
	}
	n := len(p.pairs)
	p.pairs = nil
	return n
}
