package middleware

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/nself-org/ai-orchestration/dataplane/apierror"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/internal/logbuf"
)

// accessCase is one request through the access log: what the caller sends and what the
// handler does.
type accessCase struct {
	method, id string
	status     int
	code       string
	key        string
	traced     bool
	route      bool
}

// accessLines serves the cases through NewRequestLog with log.
func accessLines(t *testing.T, log *slog.Logger, cases []accessCase) {
	t.Helper()
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.HandleMethodNotAllowed = false
	e.Use(NewRequestLog(log, metrics.New()))
	handle := func(c *gin.Context) {
		tc := cases[0]
		for _, k := range cases {
			if k.id == RequestID(c) {
				tc = k
			}
		}
		if tc.key != "" {
			c.Set(keyAPIKey, &config.APIKey{Name: tc.key})
		}
		if tc.code != "" {
			apierror.Abort(c, apierror.New(tc.status, apierror.TypeInvalidRequest, tc.code, "refused"))
			return
		}
		c.Data(tc.status, "text/plain", []byte(strings.Repeat("x", tc.status%17)))
	}
	// Methods gin refuses to route reach the access log through NoRoute.
	e.GET("/api/ai/things/:id", handle)
	e.POST("/api/ai/things/:id", handle)
	e.NoRoute(handle)
	for _, tc := range cases {
		path := "/api/ai/things/%22%0a\\"
		if !tc.route {
			path = "/no/such/\"path\"\u2028"
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.URL.Path = tc.method, path
		req.Header.Set(HeaderRequestID, tc.id)
		if tc.traced {
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
				SpanID: trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled})
			req = req.WithContext(trace.ContextWithSpanContext(req.Context(), sc))
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, tc.id, rec.Header().Get(HeaderRequestID))
	}
}

var (
	timeField     = regexp.MustCompile(`"time":"[^"]+"`)
	durationField = regexp.MustCompile(`"duration_ms":[0-9.e-]+`)
)

// blank blanks the time and the duration, which differ between two runs.
func blank(s string) string {
	return durationField.ReplaceAllString(timeField.ReplaceAllString(s, `"time":"T"`), `"duration_ms":D`)
}

func TestTheAccessLineIsTheSameThroughLogbufAndThroughSlog(t *testing.T) {
	cases := []accessCase{
		{method: http.MethodPost, id: "plain-id", status: 200, key: "default/admin", route: true},
		{method: http.MethodGet, id: `quote"back\slash<&>`, status: 404, code: "not_found", route: true},
		{method: "GE\"T", id: "{\"json\":\"in-id\"}", status: 500, code: "internal_error", key: "ns/\"weird\"\\name\n\u2028\xff", route: true},
		{method: "X\\Y", id: "traced-1", status: 502, traced: true, route: true},
		{method: "<B>", id: "unmatched-1", status: 200, traced: true, key: "k"},
		{method: http.MethodGet, id: "~!@#$%^&*()_+`-=[]{}|;':,./?", status: 429, code: "rate_limited", route: true},
	}
	var viaSlog, viaLines bytes.Buffer
	accessLines(t, slog.New(slog.NewJSONHandler(&viaSlog, nil)), cases)
	accessLines(t, slog.New(logbuf.NewJSONHandler(&viaLines, nil)), cases)
	require.Equal(t, len(cases), strings.Count(viaSlog.String(), "\n"))
	require.Contains(t, viaSlog.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"`)
	require.Contains(t, viaSlog.String(), `"level":"ERROR"`)
	require.Contains(t, viaSlog.String(), `"route":"unmatched"`)
	require.Equal(t, blank(viaSlog.String()), blank(viaLines.String()))
}

func TestRequestStateDoesNotLeakIntoTheNextRequest(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var out bytes.Buffer
	log := slog.New(logbuf.NewJSONHandler(&out, nil))
	e := gin.New()
	e.Use(NewRequestLog(log, nil))
	var seen []string
	e.GET("/x", func(c *gin.Context) {
		seen = append(seen, RequestID(c))
		Logger(c).Info("from the handler")
		c.Status(http.StatusNoContent)
	})
	for i, id := range []string{"first", "", "third"} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		if id != "" {
			req.Header.Set(HeaderRequestID, id)
		}
		if i == 0 {
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
			req = req.WithContext(trace.ContextWithSpanContext(req.Context(), sc))
		}
		e.ServeHTTP(httptest.NewRecorder(), req)
	}
	require.Equal(t, "first", seen[0])
	require.Regexp(t, `^[0-9a-f]{32}$`, seen[1], "a generated ID when the caller sent none")
	require.Equal(t, "third", seen[2])
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 6)
	require.Contains(t, lines[0], `"msg":"from the handler","request_id":"first","trace_id":"01000000000000000000000000000000","span_id":"0200000000000000"`)
	require.Contains(t, lines[2], `"msg":"from the handler","request_id":"`+seen[1]+`"}`, "no trace IDs left over from the first request")
	require.Contains(t, lines[4], `"msg":"from the handler","request_id":"third"}`)
	require.Contains(t, lines[5], `"msg":"request","request_id":"third","method":"GET","route":"/x","status":204`)
}
