package openapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/openapi"
)

// doc decodes the embedded document generically.
func doc(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	require.NoError(t, json.Unmarshal(openapi.Document(), &d), "openapi.json must be valid JSON")
	return d
}

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.Truef(t, ok, "%s must be an object, got %T", what, v)
	return m
}

// operations yields "METHOD path" → operation object.
func operations(t *testing.T, d map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for p, item := range obj(t, d["paths"], "paths") {
		for m, op := range obj(t, item, p) {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			out[strings.ToUpper(m)+" "+p] = obj(t, op, m+" "+p)
		}
	}
	return out
}

func TestTheDocumentIsOpenAPI31WithResolvableRefs(t *testing.T) {
	d := doc(t)
	require.Regexp(t, `^3\.1\.\d+$`, d["openapi"])
	info := obj(t, d["info"], "info")
	require.NotEmpty(t, info["title"])
	require.NotEmpty(t, info["version"])

	// Every $ref must point at something that exists.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				require.Truef(t, strings.HasPrefix(ref, "#/"), "%s: only local refs are used, got %q", at, ref)
				cur := any(d)
				for _, tok := range strings.Split(ref[2:], "/") {
					tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
					m, ok := cur.(map[string]any)
					require.Truef(t, ok, "%s: $ref %q does not resolve", at, ref)
					cur, ok = m[tok]
					require.Truef(t, ok, "%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, c := range x {
				walk(c, at+"/"+k)
			}
		case []any:
			for _, c := range x {
				walk(c, at+"[]")
			}
		}
	}
	walk(d, "#")
}

func TestEveryOperationHasAnIDResponsesAndItsPathParameters(t *testing.T) {
	d := doc(t)
	ids := map[string]string{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for p, item := range obj(t, d["paths"], "paths") {
		itemMap := obj(t, item, p)
		declared := map[string]bool{}
		if ps, ok := itemMap["parameters"].([]any); ok {
			for _, pv := range ps {
				pm := obj(t, pv, p+" parameters")
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
					require.Equalf(t, true, pm["required"], "%s: path parameter %v must be required", p, pm["name"])
				}
			}
		}
		for key, op := range operations(t, d) {
			if !strings.HasSuffix(key, " "+p) {
				continue
			}
			id, _ := op["operationId"].(string)
			require.NotEmptyf(t, id, "%s has no operationId", key)
			require.Emptyf(t, ids[id], "operationId %q is used by %s and %s", id, ids[id], key)
			ids[id] = key
			require.NotEmptyf(t, op["responses"], "%s has no responses", key)
			for _, m := range param.FindAllStringSubmatch(p, -1) {
				require.Truef(t, declared[m[1]], "%s: path parameter {%s} is not declared", key, m[1])
			}
		}
	}
}

func TestEveryAuthenticatedOperationDescribesTheContractErrors(t *testing.T) {
	d := doc(t)
	ops := operations(t, d)
	for key, op := range ops {
		path := strings.SplitN(key, " ", 2)[1]
		if !strings.HasPrefix(path, "/api/ai/") && !strings.HasPrefix(path, "/v1/") {
			require.Equalf(t, []any{}, op["security"], "%s needs no key and must say so", key)
			continue
		}
		_, overridden := op["security"]
		require.Falsef(t, overridden, "%s must keep the document's bearer security", key)
		require.Containsf(t, obj(t, op["responses"], key), "401", "%s must describe 401", key)
	}
	// The request path of every charged endpoint can answer each status of the contract.
	charged := []string{"POST /api/ai/chat", "POST /api/ai/embed", "POST /api/ai/summarize", "POST /v1/chat/completions", "POST /v1/embeddings"}
	for _, key := range charged {
		res := obj(t, ops[key]["responses"], key)
		for _, status := range []string{"200", "400", "401", "402", "403", "404", "429", "502", "503", "504"} {
			require.Containsf(t, res, status, "%s must describe %s", key, status)
		}
	}
	for _, key := range []string{"POST /api/ai/chat", "POST /api/ai/summarize", "POST /v1/chat/completions"} {
		require.Containsf(t, obj(t, ops[key]["responses"], key), "422", "%s must describe 422 content_blocked", key)
	}
	// Error responses carry the one error body and the request ID.
	for name, r := range obj(t, obj(t, d["components"], "components")["responses"], "responses") {
		rm := obj(t, r, name)
		schema := obj(t, obj(t, obj(t, rm["content"], name)["application/json"], name)["schema"], name)
		require.Equalf(t, "#/components/schemas/Error", schema["$ref"], "response %s must use the Error schema", name)
		require.Containsf(t, obj(t, rm["headers"], name), "X-Request-ID", "response %s must describe X-Request-ID", name)
	}
	rl := obj(t, obj(t, obj(t, d["components"], "components")["responses"], "responses")["RateLimited"], "RateLimited")
	for _, h := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		require.Contains(t, obj(t, rl["headers"], "RateLimited headers"), h)
	}
	chat200 := obj(t, obj(t, ops["POST /api/ai/chat"]["responses"], "chat")["200"], "chat 200")
	for _, h := range []string{"X-Request-ID", "X-AI-Cost", "X-AI-Cache", "X-AI-Provider", "X-RateLimit-Limit"} {
		require.Contains(t, obj(t, chat200["headers"], "chat 200 headers"), h)
	}
}

func TestEverySchemaCompilesAsJSONSchema2020(t *testing.T) {
	raw, err := jsonschema.UnmarshalJSON(strings.NewReader(string(openapi.Document())))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "https://example.test/openapi.json"
	require.NoError(t, c.AddResource(url, raw))
	schemas := obj(t, obj(t, doc(t)["components"], "components")["schemas"], "schemas")
	require.NotEmpty(t, schemas)
	for name := range schemas {
		_, err := c.Compile(url + "#/components/schemas/" + name)
		require.NoErrorf(t, err, "schema %s", name)
	}
}

// recording is one file of testdata/.
type recording struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (r recording) reply(t *testing.T) openapi.Reply {
	t.Helper()
	h := http.Header{}
	for k, v := range r.Headers {
		h.Set(k, v)
	}
	body := []byte(r.Body)
	if strings.HasPrefix(h.Get("Content-Type"), "text/") {
		var s string
		require.NoError(t, json.Unmarshal(r.Body, &s), "a text body is recorded as a JSON string")
		body = []byte(s)
	}
	return openapi.Reply{Method: r.Method, Path: r.Path, Status: r.Status, Header: h, Body: body}
}

func loadRecordings(t *testing.T) map[string]recording {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]recording{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var r recording
		require.NoErrorf(t, json.Unmarshal(b, &r), "%s", f)
		out[filepath.Base(f)] = r
	}
	return out
}

func TestRecordedRepliesValidateAgainstTheirSchemas(t *testing.T) {
	recs := loadRecordings(t)
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	statuses := map[int]bool{}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rec := recs[name]
			statuses[rec.Status] = true
			require.NoError(t, openapi.ValidateReply(rec.reply(t)))
		})
	}
	for _, s := range []int{200, 400, 401, 402, 403, 404, 422, 429} {
		require.Truef(t, statuses[s], "testdata has no recorded %d reply", s)
	}
}

func TestRepliesThatBreakTheContractAreRejected(t *testing.T) {
	recs := loadRecordings(t)
	edit := func(name string, f func(r *recording)) recording {
		r := recs[name]
		r.Headers = maps(r.Headers)
		f(&r)
		return r
	}
	setBody := func(v any) func(r *recording) {
		return func(r *recording) {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			r.Body = b
		}
	}
	tests := []struct {
		name string
		rec  recording
		want string
	}{
		{"a chat reply without cost", edit("chat.json", setBody(map[string]any{"id": "x", "content": "hi", "model": "m", "provider": "p",
			"usage": map[string]any{"promptTokens": 1, "completionTokens": 1, "totalTokens": 2}, "cached": false})), "cost"},
		{"a chat reply with cost as a string", edit("chat.json", setBody(map[string]any{"id": "x", "content": "hi", "model": "m", "provider": "p",
			"usage": map[string]any{"promptTokens": 1, "completionTokens": 1, "totalTokens": 2}, "cost": "0.1", "cached": false})), "cost"},
		{"an error body without code", edit("chat-402.json", setBody(map[string]any{"error": map[string]any{"type": "insufficient_quota", "message": "m"}})), "code"},
		{"an undescribed status", edit("chat.json", func(r *recording) { r.Status = 418 }), "418"},
		{"an undescribed path", edit("chat.json", func(r *recording) { r.Path = "/api/ai/nope" }), "not described"},
		{"a reply without X-Request-ID", edit("chat.json", func(r *recording) { delete(r.Headers, "x-request-id") }), "X-Request-ID"},
		{"a served reply without X-AI-Provider", edit("embed.json", func(r *recording) { delete(r.Headers, "x-ai-provider") }), "X-AI-Provider"},
		{"an X-AI-Cache that is neither hit nor miss", edit("chat.json", func(r *recording) { r.Headers["x-ai-cache"] = "maybe" }), "X-AI-Cache"},
		{"a non-numeric X-RateLimit-Remaining", edit("chat.json", func(r *recording) { r.Headers["x-ratelimit-remaining"] = "lots" }), "X-RateLimit-Remaining"},
		{"a stream event with an undescribed name", edit("chat-stream.json", setBody("event: surprise\ndata: {}\n\n")), "surprise"},
		{"a done event without usage", edit("chat-stream.json", setBody("event: delta\ndata: {\"content\":\"a\"}\n\nevent: done\ndata: {\"id\":\"x\",\"content\":\"a\",\"model\":\"m\",\"provider\":\"p\",\"cost\":0,\"cached\":false}\n\n")), "usage"},
		{"a moderation reply missing a contract category", edit("moderate.json", setBody(map[string]any{"flagged": false,
			"categories": map[string]any{"harassment": false}, "scores": map[string]any{"harassment": 0}, "pii": []any{}})), "hate"},
		{"a JSON reply under a media type that is not described", edit("usage.json", func(r *recording) { r.Headers["content-type"] = "application/xml" }), "application/xml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := openapi.ValidateReply(tc.rec.reply(t))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestPathsListEveryRouteInGinSyntax(t *testing.T) {
	paths := openapi.Paths()
	require.Equal(t, []string{"POST"}, paths["/api/ai/chat"])
	require.Equal(t, []string{"GET", "PUT", "DELETE"}, paths["/api/ai/budgets/:scope/:subject"])
	require.Equal(t, []string{"GET"}, paths["/api/ai/openapi.json"])
	require.Equal(t, []string{"GET"}, paths["/v1/models"])
	for p := range paths {
		require.NotContainsf(t, p, "{", "%s must use Gin's :param syntax", p)
	}
	contract := []string{"/api/ai/chat", "/api/ai/embed", "/api/ai/moderate", "/api/ai/summarize", "/api/ai/usage", "/api/ai/costs",
		"/api/ai/budgets", "/v1/chat/completions", "/v1/embeddings", "/v1/moderations", "/v1/models", "/healthz", "/readyz", "/metrics"}
	for _, p := range contract {
		require.Containsf(t, paths, p, "the contract's %s must be described", p)
	}
}

func TestUndescribedReportsRoutesMissingFromTheDocument(t *testing.T) {
	tests := []struct {
		name   string
		routes []openapi.RouteInfo
		want   []string
	}{
		{"described routes in either syntax", []openapi.RouteInfo{{"POST", "/api/ai/chat"}, {"PUT", "/api/ai/budgets/:scope/:subject"},
			{"DELETE", "/api/ai/budgets/{scope}/{subject}"}, {"get", "/v1/models"}}, nil},
		{"a HEAD next to a described GET", []openapi.RouteInfo{{"HEAD", "/healthz"}}, nil},
		{"a new route", []openapi.RouteInfo{{"POST", "/api/ai/chat"}, {"POST", "/api/ai/translate"}}, []string{"POST /api/ai/translate"}},
		{"a new method on a described path", []openapi.RouteInfo{{"DELETE", "/api/ai/chat"}}, []string{"DELETE /api/ai/chat"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, openapi.Undescribed(tc.routes))
		})
	}
}

func TestFromGinReadsAnEnginesRouteTable(t *testing.T) {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.GET(openapi.Path, openapi.Handler())
	e.PUT("/api/ai/budgets/:scope/:subject", func(*gin.Context) {})
	e.POST("/api/ai/undocumented", func(*gin.Context) {})
	require.Equal(t, []string{"POST /api/ai/undocumented"}, openapi.Undescribed(openapi.FromGin(e.Routes())))
}

func TestUnregisteredReportsDescribedOperationsTheServerLacks(t *testing.T) {
	var all []openapi.RouteInfo
	for p, ms := range openapi.Paths() {
		for _, m := range ms {
			all = append(all, openapi.RouteInfo{Method: m, Path: p})
		}
	}
	require.Empty(t, openapi.Unregistered(all))
	without := slices.DeleteFunc(slices.Clone(all), func(r openapi.RouteInfo) bool { return r.Path == "/v1/models" })
	require.Equal(t, []string{"GET /v1/models"}, openapi.Unregistered(without))
}

func TestPathSyntaxConvertsBothWays(t *testing.T) {
	tests := []struct{ openAPI, gin string }{
		{"/api/ai/chat", "/api/ai/chat"},
		{"/api/ai/budgets/{scope}/{subject}", "/api/ai/budgets/:scope/:subject"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.gin, openapi.GinPath(tc.openAPI))
		require.Equal(t, tc.openAPI, openapi.OpenAPIPath(tc.gin))
	}
	require.Equal(t, "/files/{path}", openapi.OpenAPIPath("/files/*path"))
}

func TestHandlerServesTheDocumentWithAnETag(t *testing.T) {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.GET(openapi.Path, openapi.Handler())

	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, openapi.Path, nil)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	require.JSONEq(t, string(openapi.Document()), w.Body.String())
	etag := w.Header().Get("ETag")
	require.NotEmpty(t, etag)

	req = httptest.NewRequestWithContext(t.Context(), http.MethodGet, openapi.Path, nil)
	req.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	e.ServeHTTP(w, req)
	require.Equal(t, http.StatusNotModified, w.Code)
	require.Empty(t, w.Body.String())
}

func TestDocumentReturnsACopy(t *testing.T) {
	a := openapi.Document()
	a[0] = 'X'
	require.Equal(t, byte('{'), openapi.Document()[0])
}

func TestParseSSEFollowsTheEventStreamFormat(t *testing.T) {
	got := openapi.ParseSSE([]byte(": comment\r\nevent: delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\n"))
	require.Equal(t, []openapi.SSEEvent{{Event: "delta", Data: "{\"a\":\n1}"}, {Event: "message", Data: "[DONE]"}}, got)
}
