package openapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docURL is the base URL the document is registered under in the JSON Schema compiler; refs
// such as "#/components/schemas/Usage" resolve inside it.
const docURL = "https://ai.nself.org/openapi.json"

// Reply is one HTTP reply to check against the document.
type Reply struct {
	// Method and Path name the operation; Path is a template in Gin (`:scope`) or OpenAPI
	// (`{scope}`) syntax, not a concrete URL.
	Method string
	Path   string
	Status int
	// Header is the reply's headers; Content-Type selects the described media type.
	Header http.Header
	// Body is the raw body: JSON, or the whole Server-Sent Events stream.
	Body []byte
}

// ValidateReply checks r against the document: the status is described for the operation, the
// body validates against the schema of its media type (each Server-Sent Event's data against
// the schema its event name maps to in `x-sse-events`), required headers are present and every
// described header present validates against its schema. It returns every problem found, joined.
func ValidateReply(r Reply) error {
	v, err := validator()
	if err != nil {
		return err
	}
	return v.validateReply(r)
}

// schemaValidator compiles schemas of the document on demand; the compiler is not safe for
// concurrent use, hence the mutex.
type schemaValidator struct {
	mu       sync.Mutex
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
	raw      any
}

var validator = sync.OnceValues(func() (*schemaValidator, error) {
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(document))
	if err != nil {
		return nil, fmt.Errorf("failed to parse openapi.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	// OpenAPI 3.1's default dialect is JSON Schema 2020-12 (plus annotation-only keywords).
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, raw); err != nil {
		return nil, fmt.Errorf("failed to load openapi.json into the schema compiler: %w", err)
	}
	return &schemaValidator{compiler: c, compiled: map[string]*jsonschema.Schema{}, raw: raw}, nil
})

// schema compiles the schema at the JSON pointer ptr ("/components/schemas/X") of the document.
func (v *schemaValidator) schema(ptr string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.compiled[ptr]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(docURL + "#" + ptr)
	if err != nil {
		return nil, fmt.Errorf("failed to compile the schema at %s: %w", ptr, err)
	}
	v.compiled[ptr] = s
	return s, nil
}

// at returns the value at the JSON pointer ptr of the document, following a "$ref" found at the
// end, and the pointer it was finally found at.
func (v *schemaValidator) at(ptr string) (any, string, error) {
	for range 8 { // refs of refs are bounded; the document has at most one level
		val, err := lookup(v.raw, ptr)
		if err != nil {
			return nil, ptr, err
		}
		obj, ok := val.(map[string]any)
		if !ok {
			return val, ptr, nil
		}
		ref, ok := obj["$ref"].(string)
		if !ok {
			return val, ptr, nil
		}
		if !strings.HasPrefix(ref, "#") {
			return nil, ptr, fmt.Errorf("external $ref %q at %s is not supported", ref, ptr)
		}
		ptr = ref[1:]
	}
	return nil, ptr, fmt.Errorf("too many $ref hops at %s", ptr)
}

// lookup resolves an RFC 6901 JSON pointer in doc.
func lookup(doc any, ptr string) (any, error) {
	if ptr == "" {
		return doc, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("JSON pointer %q does not start with /", ptr)
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("%s: no %q", ptr, tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("%s: no index %q", ptr, tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%s: %q is not inside an object or array", ptr, tok)
		}
	}
	return cur, nil
}

// escape makes s one JSON pointer token.
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (v *schemaValidator) validateReply(r Reply) error {
	tpl := OpenAPIPath(r.Path)
	opPtr := "/paths/" + escape(tpl) + "/" + strings.ToLower(r.Method)
	if _, _, err := v.at(opPtr); err != nil {
		return fmt.Errorf("%s %s is not described", strings.ToUpper(r.Method), tpl)
	}
	resVal, resPtr, err := v.at(opPtr + "/responses/" + strconv.Itoa(r.Status))
	if err != nil {
		return fmt.Errorf("%s %s: status %d is not described", strings.ToUpper(r.Method), tpl, r.Status)
	}
	res, _ := resVal.(map[string]any)
	where := fmt.Sprintf("%s %s %d", strings.ToUpper(r.Method), tpl, r.Status)

	var errs []error
	errs = append(errs, v.validateHeaders(where, resPtr, res, r.Header)...)
	errs = append(errs, v.validateBody(where, resPtr, res, r)...)
	return errors.Join(errs...)
}

func (v *schemaValidator) validateHeaders(where, resPtr string, res map[string]any, h http.Header) []error {
	hdrs, _ := res["headers"].(map[string]any)
	names := make([]string, 0, len(hdrs))
	for n := range hdrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		hv, hptr, err := v.at(resPtr + "/headers/" + escape(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: header %s: %w", where, name, err))
			continue
		}
		desc, _ := hv.(map[string]any)
		values, present := h[http.CanonicalHeaderKey(name)]
		if !present || len(values) == 0 {
			if req, _ := desc["required"].(bool); req {
				errs = append(errs, fmt.Errorf("%s: required header %s is missing", where, name))
			}
			continue
		}
		if _, ok := desc["schema"]; !ok {
			continue
		}
		sch, err := v.schema(hptr + "/schema")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := validateHeaderValue(sch, values[0]); err != nil {
			errs = append(errs, fmt.Errorf("%s: header %s=%q: %w", where, name, values[0], err))
		}
	}
	return errs
}

// validateHeaderValue validates a header as a string, or as the number it spells when the
// schema wants a number (headers have no JSON types of their own).
func validateHeaderValue(sch *jsonschema.Schema, value string) error {
	err := sch.Validate(value)
	if err == nil {
		return nil
	}
	if n, perr := jsonschema.UnmarshalJSON(strings.NewReader(value)); perr == nil {
		if _, isNum := n.(json.Number); isNum {
			if sch.Validate(n) == nil {
				return nil
			}
		}
	}
	return err
}

func (v *schemaValidator) validateBody(where, resPtr string, res map[string]any, r Reply) []error {
	content, _ := res["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(r.Body)) > 0 {
			return []error{fmt.Errorf("%s: a body was sent but none is described", where)}
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return []error{fmt.Errorf("%s: Content-Type %q: %w", where, r.Header.Get("Content-Type"), err)}
	}
	if _, ok := content[mt]; !ok {
		return []error{fmt.Errorf("%s: media type %s is not described", where, mt)}
	}
	mtPtr := resPtr + "/content/" + escape(mt)
	switch {
	case mt == "text/event-stream":
		return v.validateSSE(where, mtPtr, r.Body)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		sch, err := v.schema(mtPtr + "/schema")
		if err != nil {
			return []error{err}
		}
		return validateJSON(where, sch, r.Body)
	default:
		return nil // text/plain (metrics): nothing structural to check
	}
}

func validateJSON(where string, sch *jsonschema.Schema, body []byte) []error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []error{fmt.Errorf("%s: body is not JSON: %w", where, err)}
	}
	if err := sch.Validate(inst); err != nil {
		return []error{fmt.Errorf("%s: %w", where, err)}
	}
	return nil
}

// SSEEvent is one Server-Sent Event: its name ("message" when the stream gave none) and data.
type SSEEvent struct {
	Event string
	Data  string
}

// ParseSSE splits a Server-Sent Events body into events (comments and ids are dropped;
// multi-line data is joined with "\n", as the EventSource spec says).
func ParseSSE(body []byte) []SSEEvent {
	var out []SSEEvent
	var ev SSEEvent
	var data []string
	flush := func() {
		if len(data) > 0 {
			if ev.Event == "" {
				ev.Event = "message"
			}
			ev.Data = strings.Join(data, "\n")
			out = append(out, ev)
		}
		ev, data = SSEEvent{}, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
	flush()
	return out
}

func (v *schemaValidator) validateSSE(where, mtPtr string, body []byte) []error {
	events := ParseSSE(body)
	if len(events) == 0 {
		return []error{fmt.Errorf("%s: the event stream has no events", where)}
	}
	var errs []error
	for i, e := range events {
		if e.Event == "message" && e.Data == "[DONE]" {
			continue // OpenAI's end-of-stream sentinel
		}
		ptr := mtPtr + "/x-sse-events/" + escape(e.Event)
		if _, err := lookup(v.raw, ptr); err != nil {
			errs = append(errs, fmt.Errorf("%s: event %d %q is not described", where, i, e.Event))
			continue
		}
		sch, err := v.schema(ptr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, err := range validateJSON(fmt.Sprintf("%s: event %d %q", where, i, e.Event), sch, []byte(e.Data)) {
			errs = append(errs, err)
		}
	}
	return errs
}
