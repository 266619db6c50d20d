package config

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// awkwardStrings are what every string field is tried with: empty, plain, the characters
// encoding/json escapes (quote, backslash, control characters, HTML's < > &, U+2028/U+2029) and
// invalid UTF-8, which it replaces.
var awkwardStrings = []string{
	"", "a", "ns/name-01", "ai.nself.org/snapshot/v1", `say "hi"`, `back\slash`, "<script>&amp;</script>",
	"tab\tnew\nline\r", "\x00\x01\x1f\x7f", "\b\f", "é中😀", "\u2028\u2029", "\xff", "a\xed\xa0\x80b", "\xc0\xaf",
	"a\xe2\x82", "\ufffd", `{"type":"object","properties":{"a":{"type":"string"}}}`, strings.Repeat("x", 300),
}

// awkwardInts are what every integer field is tried with.
var awkwardInts = []int64{0, 1, -1, 7, 60e9, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}

// fill sets v, and every field below it, found by reflection so that a field added later is
// covered without touching this test. With full, every field is set (no zero value, no nil);
// otherwise each is zero, nil, empty or set at random.
func fill(rng *rand.Rand, v reflect.Value, full bool) {
	switch v.Kind() {
	case reflect.String:
		s := awkwardStrings[rng.IntN(len(awkwardStrings))]
		for full && s == "" {
			s = awkwardStrings[rng.IntN(len(awkwardStrings))]
		}
		v.SetString(s)
	case reflect.Int64, reflect.Int32:
		n := awkwardInts[rng.IntN(len(awkwardInts))]
		for full && n == 0 {
			n = awkwardInts[rng.IntN(len(awkwardInts))]
		}
		if v.Kind() == reflect.Int32 {
			n = int64(int32(n))
			if full && n == 0 {
				n = 3
			}
		}
		v.SetInt(n)
	case reflect.Bool:
		v.SetBool(full || rng.IntN(2) == 0)
	case reflect.Pointer:
		if !full && rng.IntN(3) == 0 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(rng, v.Elem(), full)
	case reflect.Slice:
		n := 1 + rng.IntN(3)
		if !full {
			switch rng.IntN(4) {
			case 0:
				return // nil
			case 1:
				n = 0
			}
		}
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fill(rng, v.Index(i), full)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if !full && rng.IntN(4) == 0 {
				continue // left zero
			}
			fill(rng, v.Field(i), full)
		}
	default:
		panic("fill does not know " + v.Type().String() + ": teach it, and appendSnapshot")
	}
}

func randomSnapshot(rng *rand.Rand, full bool) *Snapshot {
	var s Snapshot
	fill(rng, reflect.ValueOf(&s).Elem(), full)
	return &s
}

func requireEncodingJSON(t *testing.T, s *Snapshot) {
	t.Helper()
	want, err := json.Marshal(s)
	require.NoError(t, err)
	require.Equal(t, string(want), string(appendSnapshot(nil, s, s.Hash)))
	c := *s
	c.Hash = ""
	want, err = json.Marshal(&c)
	require.NoError(t, err)
	require.Equal(t, string(want), string(appendSnapshot(nil, s, "")))
}

func TestAppendSnapshotWritesWhatEncodingJSONWrites(t *testing.T) {
	requireEncodingJSON(t, &Snapshot{})
	requireEncodingJSON(t, &Snapshot{Providers: []Provider{}, Budgets: []Budget{}, Routes: []Route{}, APIKeys: []APIKey{}})
	requireEncodingJSON(t, &Snapshot{Providers: []Provider{{}}, Budgets: []Budget{{}}, Routes: []Route{{}}, APIKeys: []APIKey{{}}})
	rng := rand.New(rand.NewPCG(7, 11))
	for range 100 {
		requireEncodingJSON(t, randomSnapshot(rng, true)) // every field set: a field missing from appendSnapshot fails here
	}
	for range 2000 {
		requireEncodingJSON(t, randomSnapshot(rng, false))
	}
}

// Each member that may be omitted is tried alone, first and last, so that every comma rule of
// the objects whose leading members are optional is seen.
func TestAppendSnapshotOmitsEmptyMembersAsEncodingJSON(t *testing.T) {
	var each []func(*Snapshot)
	var walk func(path []int, typ reflect.Type)
	walk = func(path []int, typ reflect.Type) {
		for i := range typ.NumField() {
			p := append(append([]int(nil), path...), i)
			f := typ.Field(i)
			each = append(each, func(s *Snapshot) {
				v := reflect.ValueOf(s).Elem()
				for _, j := range p {
					for v.Kind() == reflect.Pointer {
						if v.IsNil() {
							v.Set(reflect.New(v.Type().Elem()))
						}
						v = v.Elem()
					}
					if v.Kind() == reflect.Slice {
						if v.Len() == 0 {
							v.Set(reflect.MakeSlice(v.Type(), 1, 1))
						}
						v = v.Index(0)
					}
					v = v.Field(j)
				}
				fill(rand.New(rand.NewPCG(1, 1)), v, true)
			})
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(p, ft)
			}
		}
	}
	walk(nil, reflect.TypeFor[Snapshot]())
	require.Greater(t, len(each), 60)
	for _, set := range each {
		var s Snapshot
		set(&s)
		requireEncodingJSON(t, &s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range awkwardStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendString(nil, s)))
	})
}
