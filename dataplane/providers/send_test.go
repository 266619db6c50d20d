package providers_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

const chatReply = `{"id":"chatcmpl-1","model":"m","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// rawUpstream accepts one connection at a time on 127.0.0.1 and keeps the raw bytes of each
// request it reads, answering each with chatReply.
type rawUpstream struct {
	ln   net.Listener
	mu   sync.Mutex
	reqs []string
	wg   sync.WaitGroup
}

func newRawUpstream(t *testing.T) *rawUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &rawUpstream{ln: ln}
	u.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			u.serve(conn)
		}
	})
	t.Cleanup(func() { _ = ln.Close(); u.wg.Wait() })
	return u
}

func (u *rawUpstream) serve(conn net.Conn) {
	defer func() { _ = conn.Close() }()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, req.Method+" "+req.RequestURI+"\n"+headerLines(req.Header)+"\n"+string(body))
		u.mu.Unlock()
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+
			itoa(len(chatReply))+"\r\n\r\n"+chatReply)
	}
}

func headerLines(h http.Header) string {
	var sb strings.Builder
	_ = h.Write(&sb) // sorted by key
	return sb.String()
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func (u *rawUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.reqs...)
}

// Every call sends the same request line, headers and body: the request target is built once
// per provider and shared, and nothing a call does may leak into the next one.
func TestOpenAIRequestsOnTheWireAreTheSameForEveryCall(t *testing.T) {
	u := newRawUpstream(t)
	hc := providers.NewHTTPClient(0)
	t.Cleanup(hc.CloseIdleConnections) // before the upstream's cleanup waits for its connection
	p, err := providers.New(config.Provider{Name: "acme/openai", Type: config.ProviderOpenAI, BaseURL: "http://" + u.ln.Addr().String() + "/v1/", APIKey: "sk-test"}, hc)
	require.NoError(t, err)
	req := realisticChat()
	for range 5 {
		_, err := p.Chat(t.Context(), req)
		require.NoError(t, err)
	}
	reqs := u.requests()
	require.Len(t, reqs, 5)
	for _, r := range reqs[1:] {
		require.Equal(t, reqs[0], r)
	}
	head, body, _ := strings.Cut(reqs[0], "\n\n")
	// No Accept-Encoding: a plain-HTTP upstream is on the local network, where the gateway asks
	// for no compression (the TLS transport asks for gzip).
	require.Equal(t, "POST /v1/chat/completions\nAccept: application/json\r\nAuthorization: Bearer sk-test\r\n"+
		"Content-Length: "+itoa(len(body))+"\r\nContent-Type: application/json\r\nUser-Agent: Go-http-client/1.1\r", head)
	// The body is encoding/json's rendering of the documented request shape.
	want, err := json.Marshal(struct {
		Model               string              `json:"model"`
		Messages            []providers.Message `json:"messages"`
		MaxCompletionTokens int64               `json:"max_completion_tokens"`
		Temperature         *float64            `json:"temperature"`
		User                string              `json:"user"`
	}{req.Model, req.Messages, req.MaxTokens, req.Temperature, req.User})
	require.NoError(t, err)
	require.Equal(t, string(want), body)
}

// A redirect that keeps the method (307) makes the client send the body again, from GetBody.
func TestARedirectedCallSendsTheSameBodyAgain(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		mu.Unlock()
		if r.URL.Path == "/v1/chat/completions" {
			http.Redirect(w, r, "/v2/chat/completions", http.StatusTemporaryRedirect)
			return
		}
		_, _ = io.WriteString(w, chatReply)
	}))
	defer srv.Close()
	p, err := providers.New(config.Provider{Name: "acme/openai", Type: config.ProviderOpenAI, BaseURL: srv.URL + "/v1", APIKey: "sk-test"}, nil)
	require.NoError(t, err)
	_, err = p.Chat(t.Context(), chatRequest())
	require.NoError(t, err)
	require.Len(t, bodies, 2)
	first, _ := strings.CutPrefix(bodies[0], "/v1/chat/completions ")
	second, _ := strings.CutPrefix(bodies[1], "/v2/chat/completions ")
	require.Equal(t, first, second)
	require.Contains(t, first, `"messages":[{"role":"system","content":"Be brief."}`)
}

func TestAnUnparseableBaseURLFailsEachCallAsABadRequest(t *testing.T) {
	for _, typ := range []string{config.ProviderOpenAI, config.ProviderAnthropic, config.ProviderOllama} {
		p, err := providers.New(config.Provider{Name: "x", Type: typ, BaseURL: "http://bad host:%zz"}, nil)
		require.NoError(t, err, "the URL is checked when it is used, as before")
		_, err = p.Chat(t.Context(), chatRequest())
		pe := requireKind(t, err, providers.KindBadRequest)
		require.Equal(t, "failed to build request", pe.Message)
	}
}
