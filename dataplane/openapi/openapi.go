// Package openapi embeds and serves the data plane's OpenAPI 3.1 description (openapi.json) and
// keeps it honest: [Undescribed] lists registered routes the document does not describe (the
// server's test calls it with its route table), and [ValidateReply] checks a recorded or live
// reply — body, Server-Sent Events and headers — against the document's schemas.
//
// The document is hand-written (not generated from the handlers) because it is a contract for
// clients: a change to it should be a deliberate edit that a reviewer sees, and the tests here
// catch the handlers drifting from it.
package openapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

//go:embed openapi.json
var document []byte

// etag is the strong validator of the document; it changes only when the file does.
var etag = func() string {
	sum := sha256.Sum256(document)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// Path is where the data plane serves the document.
const Path = "/api/ai/openapi.json"

// Document returns a copy of the OpenAPI 3.1 document (JSON).
func Document() []byte { return bytes.Clone(document) }

// Handler serves the document at GET [Path], with an ETag so that tools polling it get 304s.
func Handler() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("ETag", etag)
		c.Header("Cache-Control", "no-cache")
		if match := c.GetHeader("If-None-Match"); match != "" && strings.Contains(match, etag) {
			c.Status(http.StatusNotModified)
			return
		}
		c.Data(http.StatusOK, "application/json", document)
	}
}

// httpMethods are the operation keys of an OpenAPI path item, in the order they are reported.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Paths returns every described route: path → upper-case methods, sorted. Paths use Gin's
// `:param` syntax (the document's `{scope}` becomes `:scope`), so they compare directly with the
// server's route table.
func Paths() map[string][]string {
	doc := parsed()
	out := make(map[string][]string, len(doc.Paths))
	for p, item := range doc.Paths {
		var ms []string
		for _, m := range httpMethods {
			if _, ok := item[m]; ok {
				ms = append(ms, strings.ToUpper(m))
			}
		}
		out[GinPath(p)] = ms
	}
	return out
}

// GinPath turns an OpenAPI path template ("/a/{b}") into Gin's syntax ("/a/:b"); a path without
// parameters is returned unchanged.
func GinPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
			segs[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(segs, "/")
}

// OpenAPIPath turns a Gin path ("/a/:b", "/a/*b") into an OpenAPI path template ("/a/{b}").
func OpenAPIPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if len(s) > 1 && (s[0] == ':' || s[0] == '*') {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// RouteInfo is one registered route: an HTTP method and a path in Gin's syntax (OpenAPI's
// `{param}` is accepted too). gin.RouteInfo and the server's route table convert to it field
// by field.
type RouteInfo struct {
	Method string
	Path   string
}

// FromGin converts a Gin engine's route list (engine.Routes()) for [Undescribed] and
// [Unregistered].
func FromGin(routes gin.RoutesInfo) []RouteInfo {
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		out = append(out, RouteInfo{Method: r.Method, Path: r.Path})
	}
	return out
}

// Undescribed returns "METHOD /path" for every route in routes that the document does not
// describe, sorted; empty means the document covers the route table. HEAD routes are ignored
// when GET is described (Gin may register HEAD alongside GET).
func Undescribed(routes []RouteInfo) []string {
	described := Paths()
	var out []string
	for _, r := range routes {
		m := strings.ToUpper(r.Method)
		ms := described[GinPath(r.Path)]
		if slices.Contains(ms, m) || (m == http.MethodHead && slices.Contains(ms, http.MethodGet)) {
			continue
		}
		out = append(out, m+" "+GinPath(r.Path))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Unregistered returns "METHOD /path" for every described operation that is not in routes,
// sorted: the reverse check (the document promising an endpoint the server does not serve).
func Unregistered(routes []RouteInfo) []string {
	have := map[string]bool{}
	for _, r := range routes {
		have[strings.ToUpper(r.Method)+" "+GinPath(r.Path)] = true
	}
	var out []string
	for p, ms := range Paths() {
		for _, m := range ms {
			if !have[m+" "+p] {
				out = append(out, m+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// docModel is the part of the document the package reads itself (schemas are left to the
// JSON Schema validator).
type docModel struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Responses map[string]json.RawMessage `json:"responses"`
		Headers   map[string]json.RawMessage `json:"headers"`
	} `json:"components"`
}

// parsed decodes the embedded document once. A document that does not parse describes
// nothing (Paths is empty, so every route is reported undescribed); the package's tests fail
// on it long before it could ship.
var parsed = sync.OnceValue(func() *docModel {
	var d docModel
	if err := json.Unmarshal(document, &d); err != nil {
		return &docModel{}
	}
	return &d
})
