package seedenv

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/internal/compiler"
)

// ManifestOptions tunes [Manifests].
type ManifestOptions struct {
	// IncludeSecrets prints the key material (provider keys, the client key) in the Secrets.
	// Off by default: the output is meant to be committed to Git, and keys must not be.
	// Without it every Secret carries an empty placeholder and a comment saying which variable
	// to fill it from; an empty key is refused by the compiler, so a forgotten placeholder
	// fails loudly instead of serving with a guessable token.
	IncludeSecrets bool
}

// Manifests prints in as multi-document YAML (Secrets, AIProviders, AIRoutePolicies,
// AIBudgets, each group sorted by name), ready for `kubectl apply -f` or a --manifests folder.
// It is what `dataplane manifests` prints, so that a quick start can move to CRDs unchanged.
func Manifests(in compiler.Input, opts ManifestOptions) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# Generated from the AI_* environment variables by `dataplane manifests`.\n")
	if opts.IncludeSecrets {
		buf.WriteString("# WARNING: the Secrets below hold real keys. Do not commit this file.\n")
	} else {
		buf.WriteString("# Secret values are left empty: fill them in (see the comment above each Secret) or create\n")
		buf.WriteString("# the Secrets with kubectl instead of applying those documents.\n")
	}

	secrets := sortedBy(in.Secrets, func(s *corev1.Secret) string { return s.Namespace + "/" + s.Name })
	for i := range secrets {
		if err := writeSecret(&buf, &secrets[i], opts); err != nil {
			return nil, err
		}
	}
	for _, p := range sortedBy(in.Providers, func(p *aiv1alpha1.AIProvider) string { return p.Namespace + "/" + p.Name }) {
		p.TypeMeta = typeMeta(compiler.KindAIProvider)
		if err := writeDoc(&buf, "", &p); err != nil {
			return nil, err
		}
	}
	for _, r := range sortedBy(in.Routes, func(r *aiv1alpha1.AIRoutePolicy) string { return r.Namespace + "/" + r.Name }) {
		r.TypeMeta = typeMeta(compiler.KindAIRoutePolicy)
		if err := writeDoc(&buf, "", &r); err != nil {
			return nil, err
		}
	}
	for _, b := range sortedBy(in.Budgets, func(b *aiv1alpha1.AIBudget) string { return b.Namespace + "/" + b.Name }) {
		b.TypeMeta = typeMeta(compiler.KindAIBudget)
		if err := writeDoc(&buf, "", &b); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func sortedBy[T any](l []T, key func(*T) string) []T {
	out := slices.Clone(l)
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(key(&a), key(&b)) })
	return out
}

// sourceVariable names the variable a Secret's value came from, for the fill-in comment.
func sourceVariable(s *corev1.Secret) string {
	if s.Labels[aiv1alpha1.LabelAPIKey] == "true" {
		return EnvAPIKey
	}
	for _, ps := range providerSpecs {
		if ps.keyVar != "" && s.Name == keySecretName(ps.typ) {
			return ps.keyVar
		}
	}
	return ""
}

func writeSecret(buf *bytes.Buffer, s *corev1.Secret, opts ManifestOptions) error {
	// Printed with stringData: readable, and merged into data by the API server and LoadDir.
	out := corev1.Secret{
		ObjectMeta: s.ObjectMeta,
		Type:       s.Type,
		StringData: map[string]string{},
	}
	out.APIVersion, out.Kind = "v1", "Secret"
	keys := slices.Sorted(maps.Keys(s.Data))
	for k := range s.StringData {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		v, ok := s.StringData[k]
		if !ok {
			v = string(s.Data[k])
		}
		if !opts.IncludeSecrets {
			v = ""
		}
		out.StringData[k] = v
	}
	var comment string
	if !opts.IncludeSecrets {
		from := sourceVariable(s)
		if from == "" {
			from = "its original source"
		} else {
			from = "$" + from
		}
		var lits []string
		for _, k := range slices.Sorted(maps.Keys(out.StringData)) {
			lits = append(lits, fmt.Sprintf("--from-literal=%s=\"%s\"", k, from))
		}
		comment = fmt.Sprintf("# Secret %s/%s: fill in from %s (left empty here), or create it with\n#   kubectl -n %s create secret generic %s %s\n",
			s.Namespace, s.Name, from, s.Namespace, s.Name, strings.Join(lits, " "))
		if s.Labels[aiv1alpha1.LabelAPIKey] == "true" {
			comment += fmt.Sprintf("#   kubectl -n %s label secret %s %s=true && kubectl -n %s annotate secret %s %s=%s\n",
				s.Namespace, s.Name, aiv1alpha1.LabelAPIKey, s.Namespace, s.Name, aiv1alpha1.AnnotationRole, cmp.Or(s.Annotations[aiv1alpha1.AnnotationRole], "app"))
		}
	}
	return writeDoc(buf, comment, &out)
}

// writeDoc appends one "---" document, without status and server-set metadata: the output is
// for applying, and a `status: {}` or `creationTimestamp: null` would only be noise.
func writeDoc(buf *bytes.Buffer, comment string, obj any) error {
	raw, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("failed to encode manifest: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("failed to encode manifest: %w", err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		return fmt.Errorf("failed to encode manifest: %w", err)
	}
	buf.WriteString("---\n")
	buf.WriteString(comment)
	buf.Write(y)
	return nil
}
