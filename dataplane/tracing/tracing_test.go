package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nself-org/ai-orchestration/dataplane/tracing"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestTracingIsOnOnlyWhenTheOTELEnvironmentAsksForIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set is off", nil, false},
		{"a general OTLP endpoint is on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{"a traces endpoint is on", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{"the otlp exporter alone is on", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"exporter none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
		{"a disabled SDK wins over an endpoint", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
		{"a service name alone is off", map[string]string{"OTEL_SERVICE_NAME": "gw"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tracing.WantsExport(env(tc.env)))
		})
	}
}

func TestSetupWithoutTheEnvironmentLeavesRequestsUntraced(t *testing.T) {
	tp, err := tracing.Setup(t.Context(), env(nil), tracing.Options{})
	require.NoError(t, err)
	require.Nil(t, tp)
	require.False(t, tracing.Enabled())

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	var valid, recording bool
	e.Use(tracing.Middleware())
	e.POST("/api/ai/chat", func(c *gin.Context) {
		valid = trace.SpanContextFromContext(c.Request.Context()).IsValid()
		recording = tracing.Recording(c.Request.Context())
		c.Status(http.StatusOK)
	})
	req := httptest.NewRequest(http.MethodPost, "/api/ai/chat", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	e.ServeHTTP(httptest.NewRecorder(), req)
	require.False(t, valid, "no span when tracing is off, even with a caller's traceparent")
	require.False(t, recording)
}

func TestSetupRefusesOTLPOverGRPCWithAClearError(t *testing.T) {
	_, err := tracing.Setup(t.Context(), env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}), tracing.Options{})
	require.ErrorContains(t, err, "http/protobuf")
	require.False(t, tracing.Enabled())
}

func TestAnEmbeddingsRequestIsNamedAfterItsOperationAndModel(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp, err := tracing.Setup(t.Context(), env(map[string]string{"OTEL_SERVICE_NAME": "gw-test"}), tracing.Options{Exporter: exp, Sync: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.WithoutCancel(t.Context()))) })
	require.True(t, tracing.Enabled())

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(tracing.Middleware())
	e.POST("/api/ai/embed", func(c *gin.Context) {
		ctx := c.Request.Context()
		require.True(t, tracing.Recording(ctx))
		tracing.SetRequest(ctx, "embed", "text-embedding-004", 0, "acme", "")
		tracing.SetResult(ctx, tracing.Result{ProviderType: "google", Provider: "default/gemini", Model: "text-embedding-004",
			InputTokens: 7, CostUSD: 0.000001})
		c.Status(http.StatusOK)
	})
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/api/ai/embed", nil))
	require.NoError(t, tp.ForceFlush(t.Context()))

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	s := spans[0]
	require.Equal(t, "embeddings text-embedding-004", s.Name)
	require.Equal(t, "gw-test", attrValue(s.Resource.Attributes(), "service.name").AsString())
	got := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes {
		got[a.Key] = a.Value
	}
	require.Equal(t, "embeddings", got["gen_ai.operation.name"].AsString())
	require.Equal(t, "gcp.gemini", got["gen_ai.provider.name"].AsString())
	require.Equal(t, int64(7), got["gen_ai.usage.input_tokens"].AsInt64())
	require.Equal(t, "acme", got["ai.org"].AsString())
	require.NotContains(t, got, attribute.Key("gen_ai.request.max_tokens"), "no output cap was asked")
	require.NotContains(t, got, attribute.Key("ai.route"), "an implicit route has no policy name")
}

func attrValue(kvs []attribute.KeyValue, key string) attribute.Value {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestProviderTypesMapToTheGenAIProviderNames(t *testing.T) {
	for typ, want := range map[string]string{
		"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini", "ollama": "ollama",
		"openai-compatible": "openai-compatible", "mock": "mock",
	} {
		t.Run(typ, func(t *testing.T) { require.Equal(t, want, tracing.ProviderName(typ)) })
	}
}
