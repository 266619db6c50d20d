package guard

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

const personSchema = `{
  "type": "object",
  "required": ["name", "age"],
  "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
  "additionalProperties": false
}`

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		guard       *config.OutputGuard
		text        string
		requireJSON bool
		wantReason  string // "" = passes
		wantInMsg   string
	}{
		"no guard and no JSON passes anything": {nil, "hello", false, "", ""},
		"a reply within the maximum length":    {&config.OutputGuard{MaxLength: 5}, "héllo", false, "", ""},
		"a reply over the maximum length": {
			&config.OutputGuard{MaxLength: 4}, "héllo", false, ReasonTooLong, "5 characters long; the maximum is 4",
		},
		"a banned phrase in any case": {
			&config.OutputGuard{BannedPhrases: []string{"As an AI"}}, "as an ai model I cannot", false, ReasonBannedPhrase, `"As an AI"`,
		},
		"JSON asked by the request but prose returned": {
			nil, "Sure! Here it is", true, ReasonInvalidJSON, "single valid JSON document",
		},
		"valid JSON asked by the request":    {nil, `{"a":1}`, true, "", ""},
		"a reply matching the schema":        {&config.OutputGuard{JSONSchema: personSchema}, `{"name":"Ada","age":36}`, false, "", ""},
		"a fenced reply matching the schema": {&config.OutputGuard{JSONSchema: personSchema}, "```json\n{\"name\":\"Ada\",\"age\":36}\n```", false, "", ""},
		"a reply missing a required property": {
			&config.OutputGuard{JSONSchema: personSchema}, `{"name":"Ada"}`, false, ReasonSchema, "missing property 'age'",
		},
		"a reply with a wrong type": {
			&config.OutputGuard{JSONSchema: personSchema}, `{"name":"Ada","age":"old"}`, false, ReasonSchema, "at /age",
		},
	}
	v := &Validator{}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			inv, err := v.Validate(tc.guard, tc.text, tc.requireJSON)
			require.NoError(t, err)
			if tc.wantReason == "" {
				require.Nil(t, inv)
				return
			}
			require.NotNil(t, inv)
			require.Equal(t, tc.wantReason, inv.Reason)
			require.Contains(t, inv.Message, tc.wantInMsg)
			require.True(t, strings.HasPrefix(inv.RetryPrompt(), "Your previous reply was rejected"))
			require.NotContains(t, inv.Message, "mem://", "the schema's internal URL means nothing to a model")
		})
	}
}

func TestValidateRefusesABrokenSchema(t *testing.T) {
	v := &Validator{}
	_, err := v.Validate(&config.OutputGuard{JSONSchema: `{"type": 12}`}, `{}`, false)
	require.ErrorContains(t, err, "failed to compile JSON schema")
	_, err = v.CompileSchema(`{not json`)
	require.ErrorContains(t, err, "failed to parse JSON schema")
}

func TestCompileSchemaCompilesOnceAndIsSafeForConcurrentUse(t *testing.T) {
	v := &Validator{}
	var wg sync.WaitGroup
	got := make([]any, 8)
	for i := range got {
		wg.Go(func() {
			s, err := v.CompileSchema(personSchema)
			require.NoError(t, err)
			got[i] = s
		})
	}
	wg.Wait()
	for _, s := range got {
		require.Same(t, got[0], s)
	}
}
