// Package tracing exports OpenTelemetry traces of the data plane's requests, following the GenAI
// semantic conventions (gen_ai.operation.name, gen_ai.request.model, gen_ai.usage.input_tokens, …).
//
// Tracing is off unless the standard OTEL_* environment asks for it (see [Setup]). Off, the
// middleware calls the next handler directly and the attribute helpers return at once, so the hot
// path pays one atomic load per request. Spans never carry prompts, completions or keys: only
// model names, token counts, cost, cache and route decisions.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is service.name when OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) names none.
const DefaultServiceName = "ai-orchestration-dataplane"

// instrumentationName names our tracer (the instrumentation scope of every span).
const instrumentationName = "github.com/nself-org/ai-orchestration/dataplane"

// enabled is read once per request by [Middleware]; it is true only while a real tracer
// provider built by [Setup] is installed.
var enabled atomic.Bool

// tracer is the tracer of the provider [Setup] installed.
var tracer atomic.Pointer[trace.Tracer]

// Enabled reports whether [Setup] installed an exporting tracer provider.
func Enabled() bool { return enabled.Load() }

// Provider is the tracer provider [Setup] built; a nil *Provider (tracing off) is valid and
// its methods do nothing.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Options tune [Setup]; zero values take the OTEL_* environment.
type Options struct {
	// Exporter replaces the OTLP/HTTP exporter (tests may pass an in-memory one). When set,
	// tracing is on whatever the environment says.
	Exporter sdktrace.SpanExporter
	// Sync exports each span when it ends instead of batching (tests; never in production).
	Sync bool
}

// WantsExport reports whether the environment asks for an OTLP trace exporter: an OTLP
// endpoint is set, or OTEL_TRACES_EXPORTER is "otlp". OTEL_TRACES_EXPORTER=none or
// OTEL_SDK_DISABLED=true turn it off whatever else is set.
func WantsExport(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	switch {
	case exp == "none":
		return false
	case exp == "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the global tracer provider and the W3C trace-context propagator when the
// environment (read through getenv) asks for traces (see [WantsExport]) or opts.Exporter is
// set; otherwise it returns a nil *Provider and tracing stays off. The exporter is OTLP over
// HTTP/protobuf and reads the standard variables itself (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT,
// _HEADERS, _TIMEOUT, _INSECURE, …); service.name is OTEL_SERVICE_NAME or [DefaultServiceName].
// Call [Provider.Shutdown] at exit so the last spans are sent.
func Setup(ctx context.Context, getenv func(string) string, opts Options) (*Provider, error) {
	if opts.Exporter == nil && !WantsExport(getenv) {
		return nil, nil
	}
	if p := strings.ToLower(strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))); p == "grpc" ||
		(p == "" && strings.EqualFold(strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")), "grpc")) {
		return nil, errors.New("failed to set up tracing: OTLP over gRPC is not supported, use http/protobuf (port 4318)")
	}
	exp := opts.Exporter
	if exp == nil {
		var err error
		// The exporter reads the OTEL_EXPORTER_OTLP_* variables from the process environment.
		exp, err = otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("failed to build the OTLP trace exporter: %w", err)
		}
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("failed to build the trace resource: %w", err)
	}
	// OTEL_SERVICE_NAME wins, then a service.name in OTEL_RESOURCE_ATTRIBUTES, then our default.
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if _, ok := res.Set().Value(semconv.ServiceNameKey); name == "" && !ok {
		name = DefaultServiceName
	}
	if name != "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name))); err != nil {
			return nil, fmt.Errorf("failed to build the trace resource: %w", err)
		}
	}
	var sp sdktrace.SpanProcessor
	if opts.Sync {
		sp = sdktrace.NewSimpleSpanProcessor(exp)
	} else {
		sp = sdktrace.NewBatchSpanProcessor(exp)
	}
	// The sampler honours the caller's sampled flag (parent-based) and OTEL_TRACES_SAMPLER is
	// read by the SDK when set.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t := tp.Tracer(instrumentationName)
	tracer.Store(&t)
	enabled.Store(true)
	return &Provider{tp: tp}, nil
}

// ForceFlush exports every ended span now.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.tp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("failed to flush traces: %w", err)
	}
	return nil
}

// Shutdown turns tracing off, then flushes and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	enabled.Store(false)
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("failed to shut down tracing: %w", err)
	}
	return nil
}
