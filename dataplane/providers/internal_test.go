package providers

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfterReadsEveryForm(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		headers map[string]string
		want    time.Duration
	}{
		"seconds":                       {map[string]string{"Retry-After": "12"}, 12 * time.Second},
		"fractional seconds":            {map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond},
		"an HTTP date":                  {map[string]string{"Retry-After": "Wed, 25 Nov 2026 12:00:30 GMT"}, 30 * time.Second},
		"a date in the past is ignored": {map[string]string{"Retry-After": "Wed, 25 Nov 2026 11:00:00 GMT"}, 0},
		"milliseconds win over seconds": {map[string]string{"retry-after-ms": "250", "Retry-After": "1"}, 250 * time.Millisecond},
		"garbage is ignored":            {map[string]string{"Retry-After": "soon"}, 0},
		"negative is ignored":           {map[string]string{"Retry-After": "-3"}, 0},
		"absurdly long is ignored":      {map[string]string{"Retry-After": "99999999"}, 0},
		"nothing means no hint":         {nil, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			require.Equal(t, tc.want, retryAfter(h, now))
		})
	}
}

func TestDescribeDropsEchoedRequestsAndRedactsTheKey(t *testing.T) {
	require.Equal(t, "invalid_api_key: bad key [REDACTED]", describe(KindAuth, "invalid_api_key", "bad key sk-123", "sk-123", true))
	require.Equal(t, "invalid_request_error", describe(KindBadRequest, "invalid_request_error", "Invalid value: 'my secret prompt'", "", true),
		"a refused request's message may quote the prompt, so it is dropped")
	require.Contains(t, describe(KindServer, "", "", "", false), "not in the provider's error format")
	long := strings.Repeat("x", 500)
	require.Less(t, len(describe(KindServer, "", long, "", true)), 260)
}

func TestKindForStatusCoversTheContract(t *testing.T) {
	cases := map[int]ErrorKind{
		400: KindBadRequest, 401: KindAuth, 403: KindAuth, 404: KindNotFound, 408: KindTimeout, 413: KindBadRequest,
		422: KindBadRequest, 429: KindRateLimited, 500: KindServer, 502: KindServer, 503: KindServer, 504: KindTimeout, 529: KindServer,
	}
	for status, kind := range cases {
		require.Equal(t, kind, kindForStatus(status), "status %d", status)
	}
}

func readAll(t *testing.T, r *SSEReader) []SSEEvent {
	t.Helper()
	var out []SSEEvent
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, ev)
	}
}

func TestSSEReaderFollowsTheSpec(t *testing.T) {
	cases := map[string]struct {
		in   string
		want []SSEEvent
	}{
		"LF framing with event names": {"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", []SSEEvent{{"a", []byte("1")}, {"b", []byte("2")}}},
		"CRLF framing (Gemini)":       {"data: {\"x\":1}\r\n\r\ndata: 2\r\n\r\n", []SSEEvent{{"", []byte(`{"x":1}`)}, {"", []byte("2")}}},
		"bare CR framing":             {"data: 1\r\rdata: 2\r\r", []SSEEvent{{"", []byte("1")}, {"", []byte("2")}}},
		"multi-line data is joined":   {"data: a\ndata: b\ndata:c\n\n", []SSEEvent{{"", []byte("a\nb\nc")}}},
		"comments are skipped":        {": keep-alive\n\n:ping\ndata: x\n\n", []SSEEvent{{"", []byte("x")}}},
		"events without data vanish":  {"event: ping\n\ndata: y\n\n", []SSEEvent{{"", []byte("y")}}},
		"unknown fields are ignored":  {"id: 7\nretry: 10\ndata: z\n\n", []SSEEvent{{"", []byte("z")}}},
		"a last event without blank":  {"data: tail", []SSEEvent{{"", []byte("tail")}}},
		"only one space is stripped":  {"data:  two\n\n", []SSEEvent{{"", []byte(" two")}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, readAll(t, NewSSEReader(strings.NewReader(tc.in), 0)))
			// The same bytes delivered one at a time (CRLF split across reads) parse the same.
			require.Equal(t, tc.want, readAll(t, NewSSEReader(iotest.OneByteReader(strings.NewReader(tc.in)), 0)))
		})
	}
}

func TestSSEReaderBoundsLinesAndEvents(t *testing.T) {
	_, err := NewSSEReader(strings.NewReader("data: "+strings.Repeat("x", 200)+"\n\n"), 64).Next()
	require.ErrorIs(t, err, ErrLineTooLong)
	many := strings.Repeat("data: "+strings.Repeat("x", 40)+"\n", 10) + "\n"
	_, err = NewSSEReader(strings.NewReader(many), 64).Next()
	require.ErrorIs(t, err, ErrLineTooLong, "many short data lines cannot build an unbounded event")
}

func TestNDJSONReaderSkipsBlankLinesAndBoundsLines(t *testing.T) {
	r := NewNDJSONReader(strings.NewReader("{\"a\":1}\n\n  \r\n{\"b\":2}"), 0)
	l1, err := r.Next()
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(l1))
	l2, err := r.Next()
	require.NoError(t, err)
	require.JSONEq(t, `{"b":2}`, string(l2))
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
	_, err = NewNDJSONReader(strings.NewReader(strings.Repeat("x", 100)+"\n"), 10).Next()
	require.ErrorIs(t, err, ErrLineTooLong)
}

func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\"}\n\n"))
	f.Add([]byte("data: {\"x\":1}\r\n\r\ndata: [DONE]\r\n\r\n"))
	f.Add([]byte(": c\rdata: a\rdata: b\r\r"))
	f.Add([]byte("data"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewSSEReader(strings.NewReader(string(in)), 256)
		for i := 0; i < len(in)+2; i++ {
			ev, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(ev.Data) > 256 {
				t.Fatalf("event data %d bytes exceeds the bound", len(ev.Data))
			}
		}
		t.Fatalf("reader did not terminate")
	})
}

func FuzzNDJSONReader(f *testing.F) {
	f.Add([]byte("{\"message\":{\"content\":\"hi\"},\"done\":false}\n{\"done\":true,\"eval_count\":3}\n"))
	f.Add([]byte("\n\n\r\n"))
	f.Add([]byte("{\"error\":\"x\"}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewNDJSONReader(strings.NewReader(string(in)), 128)
		for i := 0; i < len(in)+2; i++ {
			line, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(line) == 0 || len(line) > 128 {
				t.Fatalf("bad line length %d", len(line))
			}
		}
		t.Fatalf("reader did not terminate")
	})
}

func TestOversizedBodiesAreMalformedNotBuffered(t *testing.T) {
	b := &base{name: "x"}
	body := io.NopCloser(strings.NewReader(`{"a":"` + strings.Repeat("x", 1000) + `"}`))
	c := &call{resp: &http.Response{StatusCode: 200, Body: body}, body: body, cancel: func() {}, ctx: t.Context()}
	var v map[string]any
	err := b.decodeBody(c, 100, &v)
	pe, ok := AsError(err)
	require.True(t, ok)
	require.Equal(t, KindMalformed, pe.Kind)
}
