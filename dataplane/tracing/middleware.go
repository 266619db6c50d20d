package tracing

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// GenAI operation names (gen_ai.operation.name) of our endpoints.
const (
	OperationChat       = "chat"
	OperationEmbeddings = "embeddings"
)

// Attributes of ours, beside the GenAI conventions; none of them holds content or keys.
const (
	// AttrCostUSD is the call's cost in US dollars (what the budgets were charged).
	AttrCostUSD = attribute.Key("ai.cost_usd")
	// AttrCacheHit is true when the reply came from the response cache (no provider call).
	AttrCacheHit = attribute.Key("ai.cache_hit")
	// AttrRoute is the AIRoutePolicy ("namespace/name") that matched; absent for implicit routes.
	AttrRoute = attribute.Key("ai.route")
	// AttrOrg is the org the request acted for.
	AttrOrg = attribute.Key("ai.org")
	// AttrProvider is the AIProvider ("namespace/name") that served the call.
	AttrProvider = attribute.Key("ai.provider")
)

// Middleware starts one server span per request, continuing the caller's W3C traceparent, and
// puts it in the request's context for the handlers (see [SetRequest], [SetResult]) and the
// access log. The span is named "{method} {route}" until the handler knows the model; GenAI
// requests are then renamed "{gen_ai.operation.name} {gen_ai.request.model}". Off (no [Setup]),
// it only calls the next handler.
func Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if !enabled.Load() {
			c.Next()
			return
		}
		tp := tracer.Load()
		if tp == nil {
			c.Next()
			return
		}
		ctx := otel.GetTextMapPropagator().Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
		route := c.FullPath()
		name := c.Request.Method
		if route != "" {
			name += " " + route
		}
		attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(c.Request.Method)}
		if route != "" {
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		if op := operationOf(route); op != "" {
			attrs = append(attrs, semconv.GenAIOperationNameKey.String(op))
		}
		ctx, span := (*tp).Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		c.Request = c.Request.WithContext(ctx)

		c.Next()

		status := c.Writer.Status()
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		} else if status >= http.StatusBadRequest {
			// A client error is not a server failure, but say which one it was.
			span.SetAttributes(semconv.ErrorTypeKey.String(http.StatusText(status)))
		}
	}
}

// operationOf maps our routes to the GenAI operation they perform; "" for the others.
func operationOf(route string) string {
	switch route {
	case "/api/ai/chat", "/api/ai/summarize", "/v1/chat/completions":
		return OperationChat
	case "/api/ai/embed", "/v1/embeddings":
		return OperationEmbeddings
	}
	return ""
}

// OperationOfEndpoint maps a route-matching endpoint ("chat", "embed", "summarize") to the GenAI
// operation name.
func OperationOfEndpoint(endpoint string) string {
	if endpoint == "embed" {
		return OperationEmbeddings
	}
	return OperationChat
}

// Recording reports whether ctx carries a span that records, so callers can skip building
// attributes when tracing is off.
func Recording(ctx context.Context) bool {
	return enabled.Load() && trace.SpanFromContext(ctx).IsRecording()
}

// SetRequest names the request's span "{operation} {model}" and records what was asked of the
// provider: the operation of endpoint, the model, the output cap (maxTokens, when > 0), the
// org and the route policy (when not empty).
func SetRequest(ctx context.Context, endpoint, model string, maxTokens int64, org, route string) {
	if !enabled.Load() {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	op := OperationOfEndpoint(endpoint)
	span.SetName(strings.TrimSpace(op + " " + model))
	attrs := []attribute.KeyValue{semconv.GenAIOperationNameKey.String(op), semconv.GenAIRequestModel(model)}
	if maxTokens > 0 {
		attrs = append(attrs, semconv.GenAIRequestMaxTokens(int(maxTokens)))
	}
	if org != "" {
		attrs = append(attrs, AttrOrg.String(org))
	}
	if route != "" {
		attrs = append(attrs, AttrRoute.String(route))
	}
	span.SetAttributes(attrs...)
}

// Result is what a settled call records on its span. It has no content fields on purpose.
type Result struct {
	// ProviderType is the AIProvider's spec.type ("openai", "anthropic", "google", …).
	ProviderType string
	// Provider is the AIProvider's "namespace/name".
	Provider string
	// Model is the model that served the reply (gen_ai.response.model).
	Model string
	// InputTokens, OutputTokens and CachedInputTokens are the billed usage.
	InputTokens, OutputTokens, CachedInputTokens int64
	// CostUSD is what the budgets were charged.
	CostUSD float64
	// CacheHit is true when the response cache answered.
	CacheHit bool
}

// SetResult records a settled call's provider, model, usage, cost and cache decision on the
// request's span.
func SetResult(ctx context.Context, r Result) {
	if !enabled.Load() {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		semconv.GenAIResponseModel(r.Model),
		semconv.GenAIUsageInputTokens(int(r.InputTokens)),
		semconv.GenAIUsageOutputTokens(int(r.OutputTokens)),
		AttrCostUSD.Float64(r.CostUSD),
		AttrCacheHit.Bool(r.CacheHit),
	}
	if r.CachedInputTokens > 0 {
		attrs = append(attrs, semconv.GenAIUsageCacheReadInputTokens(int(r.CachedInputTokens)))
	}
	if r.ProviderType != "" {
		attrs = append(attrs, semconv.GenAIProviderNameKey.String(ProviderName(r.ProviderType)))
	}
	if r.Provider != "" {
		attrs = append(attrs, AttrProvider.String(r.Provider))
	}
	span.SetAttributes(attrs...)
}

// ProviderName maps an AIProvider type to the gen_ai.provider.name value of the conventions;
// types the conventions do not list keep their own name.
func ProviderName(providerType string) string {
	switch providerType {
	case "google":
		// Our "google" type calls the Gemini API (generativelanguage.googleapis.com).
		return semconv.GenAIProviderNameGCPGemini.Value.AsString()
	case "openai":
		return semconv.GenAIProviderNameOpenAI.Value.AsString()
	case "anthropic":
		return semconv.GenAIProviderNameAnthropic.Value.AsString()
	}
	return providerType
}
