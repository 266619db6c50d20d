package guard

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// Validation failure reasons.
const (
	ReasonTooLong      = "too_long"
	ReasonBannedPhrase = "banned_phrase"
	ReasonInvalidJSON  = "invalid_json"
	ReasonSchema       = "schema_mismatch"
)

// ValidationError says why a completion failed output validation. Message is written for the
// model: the gateway sends it back (see [ValidationError.RetryPrompt]) for one retry.
type ValidationError struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Message explains the failure without quoting the completion.
	Message string
}

func (e *ValidationError) Error() string { return "output validation failed: " + e.Message }

// RetryPrompt is the user message the gateway appends (after the rejected reply) to ask the
// model for a corrected answer.
func (e *ValidationError) RetryPrompt() string {
	return "Your previous reply was rejected by an automatic check: " + e.Message +
		" Reply again with only the corrected output."
}

// Validator checks completions against an output guard. Compiled JSON Schemas are cached by the
// SHA-256 of their text, so a schema is compiled once per process, not once per request. It is
// safe for concurrent use.
type Validator struct {
	schemas sync.Map // [32]byte → *compiledSchema
}

type compiledSchema struct {
	once   sync.Once
	schema *jsonschema.Schema
	err    error
}

// CompileSchema compiles (and caches) a JSON Schema; use it to refuse a bad schema when a
// configuration is loaded rather than on the first request.
func (v *Validator) CompileSchema(schema string) (*jsonschema.Schema, error) {
	key := sha256.Sum256([]byte(schema))
	entry, _ := v.schemas.LoadOrStore(key, &compiledSchema{})
	cs := entry.(*compiledSchema)
	cs.once.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
		if err != nil {
			cs.err = fmt.Errorf("failed to parse JSON schema: %w", err)
			return
		}
		url := fmt.Sprintf("mem://schemas/%x.json", key[:8])
		c := jsonschema.NewCompiler()
		if err := c.AddResource(url, doc); err != nil {
			cs.err = fmt.Errorf("failed to add JSON schema: %w", err)
			return
		}
		cs.schema, cs.err = c.Compile(url)
		if cs.err != nil {
			cs.err = fmt.Errorf("failed to compile JSON schema: %w", cs.err)
		}
	})
	return cs.schema, cs.err
}

// Validate checks text against g: maximum length (in characters), banned phrases (case
// insensitive), and JSON — required when g has a schema or requireJSON is set (the request
// asked for a JSON response format). A reply wrapped in one Markdown code fence (```json … ```)
// is accepted as the JSON inside it, since models often add one. It returns nil when the text
// passes, and an error only for a broken schema in the configuration.
func (v *Validator) Validate(g *config.OutputGuard, text string, requireJSON bool) (*ValidationError, error) {
	if g != nil {
		if g.MaxLength > 0 {
			if n := utf8.RuneCountInString(text); int64(n) > g.MaxLength {
				return &ValidationError{Reason: ReasonTooLong, Message: fmt.Sprintf(
					"the reply is %d characters long; the maximum is %d.", n, g.MaxLength)}, nil
			}
		}
		lower := strings.ToLower(text)
		for _, p := range g.BannedPhrases {
			if p != "" && strings.Contains(lower, strings.ToLower(p)) {
				return &ValidationError{Reason: ReasonBannedPhrase, Message: fmt.Sprintf(
					"the reply contains the phrase %q, which is not allowed.", p)}, nil
			}
		}
	}
	hasSchema := g != nil && g.JSONSchema != ""
	if !hasSchema && !requireJSON {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(stripFence(text)))
	if err != nil {
		return &ValidationError{Reason: ReasonInvalidJSON, Message: fmt.Sprintf(
			"the reply must be a single valid JSON document, but it is not (%s).", jsonProblem(err))}, nil
	}
	if !hasSchema {
		return nil, nil
	}
	sch, err := v.CompileSchema(g.JSONSchema)
	if err != nil {
		return nil, err
	}
	if err := sch.Validate(doc); err != nil {
		return &ValidationError{Reason: ReasonSchema, Message: "the reply does not match the required JSON schema: " +
			schemaProblems(err) + "."}, nil
	}
	return nil, nil
}

// stripFence returns the body of a reply that is exactly one fenced code block.
func stripFence(text string) string {
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, "```") || !strings.HasSuffix(t, "```") || len(t) < 6 {
		return text
	}
	body := t[3 : len(t)-3]
	if nl := strings.IndexByte(body, '\n'); nl >= 0 && !strings.ContainsAny(body[:nl], "{[\"") {
		body = body[nl+1:] // the info string ("json")
	}
	return body
}

func jsonProblem(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

var englishPrinter = message.NewPrinter(language.English)

// schemaProblems flattens the validator's error tree to "at /path: problem; …", leaving out the
// schema's internal URL which means nothing to a model.
func schemaProblems(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var parts []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			parts = append(parts, fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(englishPrinter)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more", len(parts)-5))
	}
	return strings.Join(parts, "; ")
}
