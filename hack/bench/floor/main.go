// Command floor is the benchmark yardstick: a bare net/http/httputil.ReverseProxy in front of
// the mock upstream, with nothing else on the request path. What it costs is what any Go
// gateway pays for one extra hop on this machine; the data plane is measured against it.
//
//	go run ./hack/bench/floor --addr 127.0.0.1:0 --upstream http://127.0.0.1:8090
//
// Its one tuning is the upstream keep-alive pool: the default two idle connections per host
// would make it reconnect under concurrency and measure the kernel instead of the proxy (the
// data plane's provider client pools connections too, so this keeps the comparison fair).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:8090", "upstream base URL")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		fmt.Fprintf(os.Stderr, "floor: invalid --upstream %q\n", *upstream)
		os.Exit(2)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	tr.IdleConnTimeout = 90 * time.Second
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = tr
	// ReverseProxy flushes text/event-stream replies at once by itself; nothing else to set.

	// The request body is read before proxying: net/http's HTTP/1 server closes an unread
	// request body once the response starts, and a streamed reply that begins while the
	// transport still holds the body gets cut (golang/go#40747). A gateway reads the body anyway.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "failed to read the request body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: failed to listen on %s: %v\n", *addr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "floor: failed to serve: %v\n", err)
		os.Exit(1)
	}
}
