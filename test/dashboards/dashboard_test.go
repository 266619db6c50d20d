// Package dashboards_test keeps the Grafana dashboard in config/grafana true to the data plane:
// every metric a PromQL expression names must be one the data plane registers, with the labels
// the expression groups, filters or prints by. A renamed metric or label otherwise leaves a
// silently empty panel that nobody notices until the incident it was meant for.
package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
)

const dashboardPath = "../../config/grafana/ai-orchestration-dashboard.json"

// targetLabels are added by the scrape (Prometheus Operator ServiceMonitor or a static config),
// not by the data plane, so every series may carry them.
var targetLabels = []string{"namespace", "pod", "job", "instance", "service", "endpoint", "container"}

// registered returns every metric the data plane registers, with its variable labels, built
// from the real constructors (not from grepping the source) so that the test follows renames.
func registered(t *testing.T) map[string][]string {
	t.Helper()
	m := metrics.New()
	governor.NewMetrics(m.Registry)
	descs := make(chan *prometheus.Desc)
	go func() {
		m.Registry.Describe(descs)
		close(descs)
	}()
	// Desc exposes its name and labels only through String(); the format has been stable
	// across client_golang releases and a change fails the require below rather than passing.
	re := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range descs {
		sm := re.FindStringSubmatch(d.String())
		require.NotNil(t, sm, "unexpected Desc format: %s", d)
		var labels []string
		for l := range strings.SplitSeq(sm[2], ",") {
			l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "c("), ")")
			if l != "" {
				labels = append(labels, l)
			}
		}
		out[sm[1]] = labels
	}
	require.Contains(t, out, "aigw_requests_total")
	require.Contains(t, out, "aio_budget_decisions_total")
	return out
}

// token is one lexical element of a PromQL expression.
type token struct {
	kind string // ident, matchers, punct
	text string
	// labels are the label names of a matchers token ({a="x", b=~"y"}).
	labels []string
}

var (
	identRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	numberRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`)
	matchRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
)

// lex splits a PromQL expression into identifiers, label-matcher blocks and punctuation,
// dropping strings, numbers, durations and [range] selectors. It is not a full parser; it is
// enough to find metric and label names in the dashboard's expressions.
func lex(expr string) ([]token, error) {
	var out []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i += end + 2
		case c == '{':
			end := strings.IndexByte(expr[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated { at %d", i)
			}
			tok := token{kind: "matchers"}
			for _, m := range matchRE.FindAllStringSubmatch(expr[i+1:i+end], -1) {
				tok.labels = append(tok.labels, m[1])
			}
			out = append(out, tok)
			i += end + 1
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ at %d", i)
			}
			i += end + 1
		case c >= '0' && c <= '9':
			i += len(numberRE.FindString(expr[i:]))
		case identRE.MatchString(expr[i:]):
			id := identRE.FindString(expr[i:])
			out = append(out, token{kind: "ident", text: id})
			i += len(id)
		default:
			out = append(out, token{kind: "punct", text: string(c)})
			i++
		}
	}
	return out, nil
}

// keywords are PromQL identifiers that are not metric names when not followed by "(".
var keywords = []string{
	"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
	"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
}

// refs are the metric names and label names an expression uses.
type refs struct {
	metrics []string
	labels  []string
}

func references(expr string) (refs, error) {
	toks, err := lex(expr)
	if err != nil {
		return refs{}, err
	}
	var r refs
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch {
		case tk.kind == "matchers":
			r.labels = append(r.labels, tk.labels...)
		case tk.kind != "ident":
		case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, tk.text):
			if i+1 < len(toks) && toks[i+1].text == "(" {
				for i += 2; i < len(toks) && toks[i].text != ")"; i++ {
					if toks[i].kind == "ident" {
						r.labels = append(r.labels, toks[i].text)
					}
				}
			}
		case i+1 < len(toks) && toks[i+1].text == "(":
			// a function or an aggregation with its arguments next
		case slices.Contains(keywords, tk.text):
		default:
			r.metrics = append(r.metrics, tk.text)
		}
	}
	return r, nil
}

var legendRE = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// checkExpr reports the unknown metrics and labels of one expression; legend holds the
// {{label}} names a legend or annotation text prints.
func checkExpr(known map[string][]string, where, expr, legend string) []string {
	var problems []string
	r, err := references(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v in %q", where, err, expr)}
	}
	if len(r.metrics) == 0 {
		problems = append(problems, fmt.Sprintf("%s: no metric in %q", where, expr))
	}
	available := slices.Clone(targetLabels)
	for _, name := range r.metrics {
		labels, ok := known[name]
		if !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suffix); cut {
					if labels, ok = known[base]; ok && suffix == "_bucket" {
						labels = append(slices.Clone(labels), "le")
					}
					if ok {
						break
					}
				}
			}
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %q is not registered by the data plane", where, name))
			continue
		}
		available = append(available, labels...)
	}
	for _, m := range legendRE.FindAllStringSubmatch(legend, -1) {
		r.labels = append(r.labels, m[1])
	}
	for _, l := range r.labels {
		if l != "__name__" && !slices.Contains(available, l) {
			problems = append(problems, fmt.Sprintf("%s: label %q is not a label of %v", where, l, r.metrics))
		}
	}
	return problems
}

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	UID         string  `json:"uid"`
	Title       string  `json:"title"`
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []struct {
			Name       string          `json:"name"`
			Expr       string          `json:"expr"`
			TextFormat string          `json:"textFormat"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Definition string          `json:"definition"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr         string          `json:"expr"`
		LegendFormat string          `json:"legendFormat"`
		RefID        string          `json:"refId"`
		Datasource   json.RawMessage `json:"datasource"`
	} `json:"targets"`
	// Panels are the children of a collapsed row.
	Panels []panel `json:"panels"`
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

const datasourceVar = `{"type":"prometheus","uid":"${datasource}"}`

// check returns every problem of a dashboard: unknown metrics and labels, panels without a
// query or outside the grid, duplicate ids, and data sources that are not the template variable
// (a fixed data source uid breaks the dashboard on every other Grafana).
func check(known map[string][]string, raw []byte) []string {
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{fmt.Sprintf("not JSON: %v", err)}
	}
	var problems []string
	compact := func(m json.RawMessage) string {
		var v any
		if json.Unmarshal(m, &v) != nil {
			return string(m)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	if d.UID == "" || d.Title == "" {
		problems = append(problems, "the dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if ids[p.ID] {
				problems = append(problems, where+": duplicate id")
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
				problems = append(problems, where+": gridPos outside the 24-column grid")
			}
			walk(p.Panels)
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if len(p.Targets) == 0 {
				problems = append(problems, where+": no query")
			}
			if compact(p.Datasource) != datasourceVar {
				problems = append(problems, where+": datasource is not ${datasource}")
			}
			for _, tg := range p.Targets {
				if compact(tg.Datasource) != datasourceVar {
					problems = append(problems, where+" "+tg.RefID+": datasource is not ${datasource}")
				}
				problems = append(problems, checkExpr(known, where+" "+tg.RefID, tg.Expr, tg.LegendFormat)...)
			}
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			problems = append(problems, checkExpr(known, "annotation "+a.Name, a.Expr, a.TextFormat)...)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		if m == nil {
			problems = append(problems, fmt.Sprintf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition))
			continue
		}
		problems = append(problems, checkExpr(known, "variable "+v.Name, m[1], "{{"+m[2]+"}}")...)
	}
	return problems
}

func TestTheDashboardOnlyQueriesMetricsAndLabelsTheDataPlaneRegisters(t *testing.T) {
	raw, err := os.ReadFile(filepath.Clean(dashboardPath))
	require.NoError(t, err)
	require.Empty(t, check(registered(t), raw))
}

func TestTheDashboardCoversEveryArea(t *testing.T) {
	raw, err := os.ReadFile(filepath.Clean(dashboardPath))
	require.NoError(t, err)
	// One metric per area the dashboard promises; losing one means a row went dark.
	for _, m := range []string{
		"aigw_requests_total", "aigw_request_duration_seconds_bucket", "aigw_errors_total",
		"aigw_cost_usd_total", "aigw_tokens_total", "aio_budget_decisions_total",
		"aio_ratelimit_decisions_total", "aigw_cache_requests_total", "aigw_config_info",
		"aigw_config_reloads_total", "aigw_config_load_errors_total", "aio_store_fail_closed_total",
	} {
		require.Contains(t, string(raw), m+"{")
	}
}

func TestTheCheckCatchesBrokenQueries(t *testing.T) {
	known := registered(t)
	panelWith := func(expr, legend string) []byte {
		return fmt.Appendf(nil, `{"uid":"x","title":"x","panels":[{"id":1,"type":"timeseries","title":"p",
			"datasource":{"type":"prometheus","uid":"${datasource}"},"gridPos":{"x":0,"y":0,"w":12,"h":8},
			"targets":[{"refId":"A","expr":%q,"legendFormat":%q,"datasource":{"type":"prometheus","uid":"${datasource}"}}]}]}`, expr, legend)
	}
	tests := map[string]struct {
		dash []byte
		want string // substring of the one expected problem; empty = no problem
	}{
		"a registered counter with its labels passes": {
			panelWith(`sum by (provider, model) (rate(aigw_cost_usd_total{namespace=~"$namespace"}[$__rate_interval])) * 3600`, "{{provider}} {{model}}"), "",
		},
		"a histogram bucket with le passes": {
			panelWith(`histogram_quantile(0.99, sum by (le, route) (rate(aigw_request_duration_seconds_bucket[5m])))`, "{{route}}"), "",
		},
		"a misspelt metric is caught": {
			panelWith(`sum(rate(aigw_request_total[5m]))`, ""), `metric "aigw_request_total"`,
		},
		"a metric from another system is caught": {
			panelWith(`sum(rate(http_requests_total{job="x"}[5m])) / 1e-9`, ""), `metric "http_requests_total"`,
		},
		"grouping by a label the metric lacks is caught": {
			panelWith(`sum by (org) (rate(aigw_cost_usd_total[5m]))`, ""), `label "org"`,
		},
		"filtering on a label the metric lacks is caught": {
			panelWith(`sum(rate(aio_budget_decisions_total{outcome="blocked"}[5m]))`, ""), `label "outcome"`,
		},
		"a legend printing a missing label is caught": {
			panelWith(`sum by (code) (rate(aigw_errors_total[5m]))`, "{{route}}"), `label "route"`,
		},
		"a query without a metric is caught": {
			panelWith(`vector(1)`, ""), "no metric",
		},
		"a fixed data source is caught": {
			[]byte(`{"uid":"x","title":"x","panels":[{"id":1,"type":"stat","title":"p","datasource":{"type":"prometheus","uid":"abc"},
				"gridPos":{"x":0,"y":0,"w":4,"h":4},"targets":[{"refId":"A","expr":"sum(aigw_streams_open)","datasource":{"type":"prometheus","uid":"${datasource}"}}]}]}`),
			"datasource",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			problems := check(known, tc.dash)
			if tc.want == "" {
				require.Empty(t, problems)
				return
			}
			require.Len(t, problems, 1, "%v", problems)
			require.Contains(t, problems[0], tc.want)
		})
	}
}
