package logbuf

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hostile are strings a caller controls (paths, request IDs, header values): every class of
// byte JSON must escape, invalid UTF-8 and the JavaScript line separators.
var hostile = []string{
	"", "plain", `quote"inside`, `back\slash`, "\\\"", "new\nline", "cr\rlf", "tab\there",
	"\x00nul", "\x01\x02\x1f", "\x7fdel", "\b\f", "<script>&amp;</script>", "é café ☕ 日本 🎉",
	"\xff\xfe bad utf8", "a\xc3", "\xe2\x80\xa8 ls \xe2\x80\xa9 ps", "\u2027\u202a", "/api/ai/budgets/user/a%2Fb",
	"x-request-id:{\"a\":1}", "\ufffd", strings.Repeat("long\"\\", 500), "\xed\xa0\x80 surrogate",
}

var floats = []float64{0, math.Copysign(0, -1), 1, -1, 0.001, 1.234, 123.456, 1e-6, 9.99e-7, 1e-7, 1.5e-10,
	1e20, 1e21, 1.7e21, -2.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1 + 0.2,
	math.NaN(), math.Inf(1), math.Inf(-1), 12345.678, 5e-324}

var times = []time.Time{
	time.Date(2026, 11, 25, 22, 27, 15, 123456789, time.UTC),
	time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.FixedZone("CET", 3600)),
	time.Date(1999, 12, 31, 23, 59, 59, 1, time.FixedZone("odd", -(9*3600+30*60))),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	{},
	time.Now(), // with a monotonic reading, which slog strips
}

var levels = []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2, slog.LevelError + 4}

// field is one attribute, added to a Line by its method and to a slog record as its Attr.
type field struct {
	key  string
	s    string
	i    int64
	f    float64
	hex  []byte
	kind byte // 's', 'i', 'f', 'h'
}

func (f field) attr() slog.Attr {
	switch f.kind {
	case 'i':
		return slog.Int64(f.key, f.i)
	case 'f':
		return slog.Float64(f.key, f.f)
	case 'h':
		var sb strings.Builder
		for _, c := range f.hex {
			sb.WriteByte(hexDigits[c>>4])
			sb.WriteByte(hexDigits[c&0xf])
		}
		return slog.String(f.key, sb.String())
	}
	return slog.String(f.key, f.s)
}

func (f field) add(l *Line) {
	switch f.kind {
	case 'i':
		l.Int(f.key, f.i)
	case 'f':
		l.Float(f.key, f.f)
	case 'h':
		l.Hex(f.key, f.hex)
	default:
		l.Str(f.key, f.s)
	}
}

// viaSlog is what slog's own JSONHandler writes for the record.
func viaSlog(t testing.TB, at time.Time, level slog.Level, msg string, fields []field) string {
	var out bytes.Buffer
	r := slog.NewRecord(at, level, msg, 0)
	for _, f := range fields {
		r.AddAttrs(f.attr())
	}
	require.NoError(t, slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), r))
	return out.String()
}

// viaLine is what a Line writes for the same record.
func viaLine(t testing.TB, at time.Time, level slog.Level, msg string, fields []field) string {
	var out bytes.Buffer
	h := NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
	l := h.Line(at, level, msg)
	require.NotNil(t, l)
	for _, f := range fields {
		f.add(l)
	}
	require.NoError(t, l.Write())
	return out.String()
}

func TestALineIsTheBytesSlogWritesForTheSameRecord(t *testing.T) {
	n := 0
	check := func(at time.Time, level slog.Level, msg string, fields []field) {
		t.Helper()
		n++
		require.Equal(t, viaSlog(t, at, level, msg, fields), viaLine(t, at, level, msg, fields), "msg %q fields %+v", msg, fields)
	}
	for _, s := range hostile {
		check(times[0], slog.LevelInfo, s, nil)
		check(times[0], slog.LevelInfo, "request", []field{
			{key: "request_id", s: s, kind: 's'}, {key: "method", s: "POST", kind: 's'}, {key: "route", s: s, kind: 's'},
			{key: "status", i: 200, kind: 'i'}, {key: "duration_ms", f: 1.234, kind: 'f'}, {key: "bytes", i: -7, kind: 'i'},
			{key: s + "k", s: "v", kind: 's'},
		})
	}
	for _, f := range floats {
		check(times[1], slog.LevelInfo, "float", []field{{key: "v", f: f, kind: 'f'}, {key: "after", i: 1, kind: 'i'}})
	}
	for _, at := range times {
		for _, level := range levels {
			check(at, level, "request", []field{
				{key: "trace_id", hex: []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}, kind: 'h'},
				{key: "span_id", hex: []byte{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, kind: 'h'},
				{key: "status", i: math.MinInt64, kind: 'i'}, {key: "n", i: math.MaxInt64, kind: 'i'},
			})
		}
	}
	for ms := int64(0); ms < 5000; ms += 7 {
		check(times[0], slog.LevelInfo, "request", []field{{key: "duration_ms", f: float64(ms*997%100000) / 1000, kind: 'f'}})
	}
	t.Logf("%d records compared", n)
}

// FuzzLineMatchesSlog compares a Line with slog's output for arbitrary strings and numbers.
func FuzzLineMatchesSlog(f *testing.F) {
	for i, s := range hostile {
		f.Add(s, floats[i%len(floats)], int64(i)*-31, int64(i)*1e15)
	}
	f.Fuzz(func(t *testing.T, s string, v float64, i int64, nanos int64) {
		at := time.Unix(0, nanos).In(time.FixedZone("z", int(i%50000)))
		fields := []field{{key: "s", s: s, kind: 's'}, {key: "f", f: v, kind: 'f'}, {key: "i", i: i, kind: 'i'},
			{key: s, s: s, kind: 's'}, {key: "h", hex: []byte(s), kind: 'h'}}
		level := slog.Level(uint64(i)%17) - 4 // every level the handler writes
		require.Equal(t, viaSlog(t, at, level, s, fields), viaLine(t, at, level, s, fields))
	})
}

func TestAHandlerWritesWhatSlogsJSONHandlerWrites(t *testing.T) {
	var want, got bytes.Buffer
	at := times[0]
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	std := slog.NewJSONHandler(&want, opts)
	ours := NewJSONHandler(&got, opts)
	for _, hs := range [][2]slog.Handler{
		{std, ours},
		{std.WithAttrs([]slog.Attr{slog.String("request_id", hostile[2])}), ours.WithAttrs([]slog.Attr{slog.String("request_id", hostile[2])})},
		{std.WithGroup("g").WithAttrs([]slog.Attr{slog.Int("n", 1)}), ours.WithGroup("g").WithAttrs([]slog.Attr{slog.Int("n", 1)})},
	} {
		for _, level := range levels {
			r := slog.NewRecord(at, level, "msg", 0)
			r.AddAttrs(slog.String("path", hostile[12]), slog.Any("err", "x"), slog.Duration("d", time.Second))
			require.NoError(t, hs[0].Handle(context.Background(), r))
			require.NoError(t, hs[1].Handle(context.Background(), r))
		}
	}
	require.Equal(t, want.String(), got.String())
}

func TestLinesFollowTheHandlersLevelAndOptions(t *testing.T) {
	var out bytes.Buffer
	h := NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})
	require.Nil(t, h.Line(time.Now(), slog.LevelInfo, "request"), "below the level: no line")
	require.NotNil(t, h.Line(time.Now(), slog.LevelError, "request"))

	replacing := NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return a }})
	require.Nil(t, replacing.Line(time.Now(), slog.LevelInfo, "request"), "ReplaceAttr changes records: lines go through slog")
	withSource := NewJSONHandler(&out, &slog.HandlerOptions{AddSource: true})
	require.Nil(t, withSource.Line(time.Now(), slog.LevelInfo, "request"))
	require.Zero(t, out.Len())
}
