package budgetwriter_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/money"
	"github.com/nself-org/ai-orchestration/internal/budgetwriter"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// gitOpsBudget is a budget committed to Git: no managed-by label.
const gitOpsBudget = `apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata:
  name: per-user
  namespace: default
spec:
  scope: user
  subject: "*"
  daily: "1"
`

func compileDir(t *testing.T, dir string) compiler.Result {
	t.Helper()
	in, err := compiler.LoadDir(dir)
	require.NoError(t, err)
	return compiler.Compile(in)
}

func snapshotBudget(res compiler.Result, name string) *config.Budget {
	for i := range res.Snapshot.Budgets {
		if res.Snapshot.Budgets[i].Name == name {
			return &res.Snapshot.Budgets[i]
		}
	}
	return nil
}

func TestFilesWriterCreatesAManifestTheCompilerLoads(t *testing.T) {
	dir := t.TempDir()
	w := budgetwriter.NewFiles(dir)
	v, created, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "user", Subject: "user-123", Daily: "1.00", Monthly: "25"})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, "default/api-user-user-123", v.Name)
	require.Equal(t, handlers.ManagedByAPI, v.ManagedBy)

	data, err := os.ReadFile(filepath.Join(dir, "api-budget-user-user-123.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(data), "ai.nself.org/managed-by: api")
	require.NotContains(t, string(data), "status")
	require.NotContains(t, string(data), "creationTimestamp")

	res := compileDir(t, dir)
	require.Empty(t, res.Problems)
	b := snapshotBudget(res, "default/api-user-user-123")
	require.NotNil(t, b)
	require.Equal(t, []config.BudgetLimit{{Period: "daily", Limit: money.MustParseUSD("1")}, {Period: "monthly", Limit: money.MustParseUSD("25")}}, b.Limits)
	require.Equal(t, "block", b.Action)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestFilesWriterReplacesItsOwnBudget(t *testing.T) {
	dir := t.TempDir()
	w := budgetwriter.NewFiles(dir)
	_, _, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "org", Subject: "acme", Monthly: "100"})
	require.NoError(t, err)
	v, created, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "org", Subject: "acme", Daily: "5", Action: "alert", AlertThresholds: []int32{80, 50}})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, "5", v.Spec.Daily)

	b := snapshotBudget(compileDir(t, dir), "default/api-org-acme")
	require.NotNil(t, b)
	require.Equal(t, []config.BudgetLimit{{Period: "daily", Limit: money.MustParseUSD("5")}}, b.Limits)
	require.Equal(t, "alert", b.Action)
	require.Equal(t, []int32{50, 80}, b.AlertThresholds)

	got, err := w.Get(t.Context(), "org", "acme")
	require.NoError(t, err)
	require.Equal(t, v, got)
}

func TestFilesWriterNeverTouchesAGitOpsOwnedBudget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "per-user.yaml")
	require.NoError(t, os.WriteFile(path, []byte(gitOpsBudget), 0o644))
	w := budgetwriter.NewFiles(dir)

	_, _, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "user", Subject: "*", Daily: "2"})
	require.ErrorIs(t, err, handlers.ErrBudgetConflict)
	require.Contains(t, err.Error(), "default/per-user is managed by GitOps")
	err = w.Delete(t.Context(), "user", "*")
	require.ErrorIs(t, err, handlers.ErrBudgetConflict)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing was written next to the GitOps manifest")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, gitOpsBudget, string(data))

	v, err := w.Get(t.Context(), "user", "*")
	require.NoError(t, err)
	require.Equal(t, handlers.ManagedByGitOps, v.ManagedBy)
}

func TestFilesWriterRefusesWhatTheCompilerRefusesWithTheSameMessage(t *testing.T) {
	cases := map[string]struct {
		spec handlers.BudgetSpec
		yaml string // the same spec as a hand-written manifest
	}{
		"no limit":                     {handlers.BudgetSpec{Scope: "user", Subject: "u"}, "scope: user\n  subject: u"},
		"too many decimals":            {handlers.BudgetSpec{Scope: "user", Subject: "u", Daily: "1.0000000001"}, "scope: user\n  subject: u\n  daily: \"1.0000000001\""},
		"an exponent":                  {handlers.BudgetSpec{Scope: "org", Subject: "o", Daily: "1e3"}, "scope: org\n  subject: o\n  daily: \"1e3\""},
		"downgrade without a model":    {handlers.BudgetSpec{Scope: "org", Subject: "o", Daily: "1", Action: "downgrade"}, "scope: org\n  subject: o\n  daily: \"1\"\n  action: downgrade"},
		"an unknown action":            {handlers.BudgetSpec{Scope: "org", Subject: "o", Daily: "1", Action: "throttle"}, "scope: org\n  subject: o\n  daily: \"1\"\n  action: throttle"},
		"a threshold over 100 percent": {handlers.BudgetSpec{Scope: "org", Subject: "o", Daily: "1", AlertThresholds: []int32{150}}, "scope: org\n  subject: o\n  daily: \"1\"\n  alertThresholds: [150]"},
		"an unknown time zone":         {handlers.BudgetSpec{Scope: "org", Subject: "o", Daily: "1", TimeZone: "Mars/Olympus"}, "scope: org\n  subject: o\n  daily: \"1\"\n  timeZone: Mars/Olympus"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ref := t.TempDir()
			manifest := fmt.Sprintf("apiVersion: ai.nself.org/v1alpha1\nkind: AIBudget\nmetadata: {name: ref, namespace: default}\nspec:\n  %s\n", tc.yaml)
			require.NoError(t, os.WriteFile(filepath.Join(ref, "ref.yaml"), []byte(manifest), 0o644))
			problems := compileDir(t, ref).ProblemsFor(compiler.KindAIBudget, "default", "ref")
			require.Len(t, problems, 1)
			require.True(t, problems[0].Excluded)

			dir := t.TempDir()
			_, _, err := budgetwriter.NewFiles(dir).Put(t.Context(), tc.spec)
			var inv *handlers.BudgetInvalidError
			require.True(t, errors.As(err, &inv), "got %v", err)
			require.Equal(t, problems[0].Message, inv.Message)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "an invalid budget is not written")
		})
	}
}

func TestFilesWriterDeletesOnlyItsOwnBudget(t *testing.T) {
	dir := t.TempDir()
	w := budgetwriter.NewFiles(dir)
	_, _, err := w.Put(t.Context(), handlers.BudgetSpec{Scope: "apiKey", Subject: "default/app-key", Daily: "3"})
	require.NoError(t, err)
	require.NotNil(t, snapshotBudget(compileDir(t, dir), "default/"+budgetwriter.ObjectName("apiKey", "default/app-key")))

	require.NoError(t, w.Delete(t.Context(), "apiKey", "default/app-key"))
	require.Empty(t, compileDir(t, dir).Snapshot.Budgets)
	_, err = w.Get(t.Context(), "apiKey", "default/app-key")
	require.ErrorIs(t, err, handlers.ErrBudgetNotFound)
	require.ErrorIs(t, w.Delete(t.Context(), "apiKey", "default/app-key"), handlers.ErrBudgetNotFound)
}

func TestFilesWriterListsTheBudgetsThatApplyToASubject(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "per-user.yaml"), []byte(gitOpsBudget), 0o644))
	w := budgetwriter.NewFiles(dir)
	for _, s := range []handlers.BudgetSpec{
		{Scope: "user", Subject: "alice", Daily: "1"},
		{Scope: "user", Subject: "bob", Daily: "1"},
		{Scope: "org", Subject: "acme", Daily: "1"},
		{Scope: "global", Subject: "*", Monthly: "1000"},
	} {
		_, _, err := w.Put(t.Context(), s)
		require.NoError(t, err)
	}
	names := func(scope, subject string) []string {
		vs, err := w.List(t.Context(), scope, subject)
		require.NoError(t, err)
		out := []string{}
		for _, v := range vs {
			out = append(out, v.Name)
		}
		return out
	}
	globalName := "default/" + budgetwriter.ObjectName("global", "*")
	require.Equal(t, []string{globalName, "default/api-org-acme", "default/api-user-alice", "default/api-user-bob", "default/per-user"}, names("", ""))
	require.Equal(t, []string{"default/api-user-alice", "default/per-user"}, names("user", "alice"))
	require.Equal(t, []string{globalName, "default/api-user-alice", "default/per-user"}, names("", "alice"), "global and every-user budgets apply to alice too")
	require.Equal(t, []string{"default/api-org-acme"}, names("org", "acme"))
}

func TestObjectNameIsAUniqueDNSName(t *testing.T) {
	dns := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	cases := map[string]struct {
		scope, subject, want string
	}{
		"a plain id is kept":          {"user", "user-123", "api-user-user-123"},
		"the scope is lowercased":     {"apiKey", "k", ""},
		"upper case gets a hash":      {"user", "User-1", ""},
		"every subject gets a hash":   {"user", "*", ""},
		"a secret name gets a hash":   {"apiKey", "default/app", ""},
		"a long id is cut and hashed": {"user", strings.Repeat("x", 300), ""},
	}
	seen := map[string]string{}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := budgetwriter.ObjectName(tc.scope, tc.subject)
			if tc.want != "" {
				require.Equal(t, tc.want, got)
			}
			require.Regexp(t, dns, got)
			require.LessOrEqual(t, len(got), 63)
		})
		seen[budgetwriter.ObjectName(tc.scope, tc.subject)] = name
	}
	require.Len(t, seen, len(cases), "no two subjects share a name")
	require.NotEqual(t, budgetwriter.ObjectName("user", "User-1"), budgetwriter.ObjectName("user", "user-1"))
}

func TestFilesWriterCannotBeMadeToWriteAnotherObject(t *testing.T) {
	dir := t.TempDir()
	subject := "x\"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: evil}\n# "
	_, _, err := budgetwriter.NewFiles(dir).Put(t.Context(), handlers.BudgetSpec{Scope: "user", Subject: subject, Daily: "1"})
	require.NoError(t, err)
	in, err := compiler.LoadDir(dir)
	require.NoError(t, err)
	require.Empty(t, in.Secrets)
	require.Len(t, in.Budgets, 1)
	require.Equal(t, subject, in.Budgets[0].Spec.Subject)
}
