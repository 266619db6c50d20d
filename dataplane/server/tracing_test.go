package server_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/nself-org/ai-orchestration/dataplane/tracing"
)

// otlpReceiver is a local OTLP/HTTP trace receiver: it accepts POST /v1/traces with a protobuf
// ExportTraceServiceRequest, as an OpenTelemetry Collector does, and keeps the spans.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.services = append(r.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// span returns the first span with name whose http.route is route, and the service names seen.
func (r *otlpReceiver) span(name, route string) (*tracepb.Span, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.GetName() == name && attrs(s)["http.route"] == route {
			return s, r.services
		}
	}
	return nil, r.services
}

// attrs flattens a span's attributes to Go values for assertions.
func attrs(s *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, a := range s.GetAttributes() {
		out[a.GetKey()] = anyValue(a.GetValue())
	}
	return out
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	}
	return v.String()
}

func TestAChatRequestIsExportedAsAGenAISpanToAnOTLPReceiver(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	// Only the standard variables turn tracing on, as in production.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.URL+"/v1/traces")
	t.Setenv("OTEL_SERVICE_NAME", "")
	tp, err := tracing.Setup(t.Context(), os.Getenv, tracing.Options{})
	require.NoError(t, err)
	require.NotNil(t, tp, "an OTLP endpoint in the environment turns tracing on")
	// t.Context is already canceled when cleanups run.
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.WithoutCancel(t.Context()))) })

	var logs syncBuffer
	h := newHarness(t, harnessOpts{logs: &logs})
	const prompt = "Tell me the secret launch codes for project nightingale"
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const callerSpan = "00f067aa0ba902b7"
	code, _, body := h.do(http.MethodPost, "/api/ai/chat", adminKey, map[string]any{
		"model": "gpt-4o-mini", "userId": "user-1", "orgId": "acme", "maxTokens": 64,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	}, "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	require.Equal(t, http.StatusOK, code, string(body))
	var reply struct {
		Content string `json:"content"`
	}
	require.NoError(t, json.Unmarshal(body, &reply))
	require.NoError(t, tp.ForceFlush(t.Context()))

	span, services := recv.span("chat gpt-4o-mini", "/api/ai/chat")
	require.NotNil(t, span, "a span named {gen_ai.operation.name} {gen_ai.request.model} reached the receiver")
	require.Contains(t, services, tracing.DefaultServiceName)
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, span.GetKind())
	require.Equal(t, callerTrace, hex.EncodeToString(span.GetTraceId()), "the caller's traceparent is continued")
	require.Equal(t, callerSpan, hex.EncodeToString(span.GetParentSpanId()))

	a := attrs(span)
	for key, want := range map[string]any{
		"gen_ai.operation.name":     "chat",
		"gen_ai.provider.name":      "openai",
		"gen_ai.request.model":      "gpt-4o-mini",
		"gen_ai.response.model":     "gpt-4o-mini",
		"gen_ai.request.max_tokens": int64(64),
		"ai.cache_hit":              false,
		"ai.route":                  "default/default",
		"ai.org":                    "acme",
		"ai.provider":               "default/openai",
		"http.route":                "/api/ai/chat",
		"http.response.status_code": int64(200),
	} {
		require.Equal(t, want, a[key], "attribute %s", key)
	}
	require.Greater(t, a["gen_ai.usage.input_tokens"], int64(0))
	require.Greater(t, a["gen_ai.usage.output_tokens"], int64(0))
	require.Greater(t, a["ai.cost_usd"], 0.0)

	// Nothing of the conversation or the credentials is in the trace.
	for k, v := range a {
		s, _ := v.(string)
		require.NotContains(t, s, "nightingale", "attribute %s carries prompt text", k)
		require.NotContains(t, s, adminKey, "attribute %s carries the API key", k)
		if reply.Content != "" {
			require.NotContains(t, s, reply.Content, "attribute %s carries the completion", k)
		}
	}

	// The request's log lines carry the trace and span IDs, so logs and traces join.
	require.Contains(t, logs.String(), `"trace_id":"`+callerTrace+`"`)
	require.Contains(t, logs.String(), `"span_id":"`+hex.EncodeToString(span.GetSpanId())+`"`)

	// A streamed OpenAI-style request is traced the same way, its usage known when the stream ends.
	code, _, body = h.do(http.MethodPost, "/v1/chat/completions", adminKey, map[string]any{
		"model": "gpt-4o-mini", "stream": true, "user": "user-1",
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	})
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, tp.ForceFlush(t.Context()))
	stream, _ := recv.span("chat gpt-4o-mini", "/v1/chat/completions")
	require.NotNil(t, stream, "the streamed request's span reached the receiver")
	sa := attrs(stream)
	require.Equal(t, "openai", sa["gen_ai.provider.name"])
	require.Greater(t, sa["gen_ai.usage.output_tokens"], int64(0))
	require.NotEqual(t, callerTrace, hex.EncodeToString(stream.GetTraceId()), "without a traceparent a new trace starts")
}
