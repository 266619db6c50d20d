package config

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/internal/jsondiff"
)

// referenceDecode is Decode as it was written with encoding/json alone: the contract that the
// shorter way of Decode is held to.
func referenceDecode(b []byte) (*Snapshot, error) {
	var r io.Reader = bytes.NewReader(b)
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("failed to decompress snapshot: %w", err)
		}
		r = zr
	}
	dec := json.NewDecoder(io.LimitReader(r, maxDecoded))
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to decode snapshot: %w", err)
	}
	if s.Version != SchemaVersion {
		return nil, fmt.Errorf("snapshot version %q is not %q: refusing it", s.Version, SchemaVersion)
	}
	c := s
	c.Hash = ""
	enc, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(enc)
	if want := hex.EncodeToString(sum[:]); want != s.Hash {
		return nil, fmt.Errorf("snapshot hash %q does not match its content (%q): refusing it", s.Hash, want)
	}
	return &s, nil
}

// requireSameDecode fails unless Decode and referenceDecode agree on b: the same error text, or
// the same snapshot.
func requireSameDecode(t testing.TB, b []byte) {
	t.Helper()
	want, wantErr := referenceDecode(b)
	got, gotErr := Decode(b)
	if wantErr != nil {
		require.Error(t, gotErr, "Decode accepted what encoding/json refuses: %q", b)
		require.Equal(t, wantErr.Error(), gotErr.Error(), "for %q", b)
		return
	}
	require.NoError(t, gotErr, "for %q", b)
	jsondiff.RequireSameValue(t, want, got, b)
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func sealed(t testing.TB, s *Snapshot) *Snapshot {
	t.Helper()
	require.NoError(t, s.Seal())
	return s
}

// wireCases are documents, valid and not, plain and compressed, as a Secret could hold them.
func wireCases(t testing.TB) [][]byte {
	rng := rand.New(rand.NewPCG(3, 5))
	var snaps []*Snapshot
	snaps = append(snaps, sealed(t, &Snapshot{}), sealed(t, &Snapshot{Providers: []Provider{}, Budgets: []Budget{}, Routes: []Route{}, APIKeys: []APIKey{}}))
	for i := range 40 {
		snaps = append(snaps, sealed(t, randomSnapshot(rng, i%2 == 0)))
	}
	var out [][]byte
	for _, s := range snaps {
		enc, err := Encode(s)
		require.NoError(t, err)
		plain, err := json.Marshal(s)
		require.NoError(t, err)
		indented, err := json.MarshalIndent(s, "", "  ")
		require.NoError(t, err)
		out = append(out, enc, plain, append(plain, '\n'), append(plain, " trailing bytes"...), indented,
			gzipped(t, indented), gzipped(t, append(plain, "}{"...)), gzipped(t, plain[:len(plain)-1]))
		// Corrupt the compressed stream: its data, its checksum, its length, its end.
		for _, at := range []int{len(enc) / 2, len(enc) - 6, len(enc) - 2} {
			bad := bytes.Clone(enc)
			bad[at] ^= 0x55
			out = append(out, bad)
		}
		out = append(out, enc[:len(enc)-3], enc[:len(enc)/2], append(bytes.Clone(enc), enc...), append(bytes.Clone(enc), 0x1f, 0x8b, 0))
		// Tamper with the content and leave the hash.
		for _, at := range []int{len(plain) / 3, len(plain) / 2, len(plain) - 3} {
			bad := bytes.Clone(plain)
			bad[at] ^= 0x01
			out = append(out, bad)
		}
	}
	s := snaps[3]
	withKey := func(json string) []byte {
		plain, err := (&Snapshot{Version: s.Version, Hash: s.Hash}).marshalForTest()
		require.NoError(t, err)
		return append(plain[:len(plain)-1:len(plain)-1], json+"}"...)
	}
	out = append(out, withKey(`,"unknown":1`), withKey(`,"Version":"x"`), withKey(`,"version":"x"`), withKey(`,"providers":null`),
		[]byte(strings.Replace(string(mustJSON(t, s)), `"version"`, `"VERSION"`, 1)),
		[]byte(strings.Replace(string(mustJSON(t, s)), `"hash":"`, `"hash":"0`, 1)),
		[]byte(strings.Replace(string(mustJSON(t, s)), SchemaVersion, "ai.nself.org/snapshot/v0", 1)),
		[]byte(strings.Replace(string(mustJSON(t, s)), `,"providers":`, `,"hash":"x","providers":`, 1)),
		[]byte(strings.Replace(string(mustJSON(t, s)), `{"version":`, `{"apiKeys":null,"version":`, 1)),
		nil, []byte{0x1f}, []byte{0x1f, 0x8b}, []byte("null"), []byte("[]"), []byte("{}"), []byte(" {}"))
	// Every JSON value, valid and not, under every member of every object.
	for _, tmpl := range []string{
		`{"version":%s}`, `{"hash":%s}`, `{"providers":%s}`, `{"budgets":%s}`, `{"routes":%s}`, `{"apiKeys":%s}`,
		`{"providers":[{"name":%s}]}`, `{"providers":[{"apiKey":%s}]}`, `{"providers":[{"timeout":%s}]}`,
		`{"providers":[{"limits":%s}]}`, `{"providers":[{"limits":{"tokensPerMinute":%s}}]}`,
		`{"providers":[{"models":[{"inputPerMillion":%s}]}]}`, `{"providers":[{"models":[{"embedding":%s}]}]}`,
		`{"providers":[{"mock":%s}]}`, `{"providers":[{"mock":{"latency":%s}}]}`,
		`{"budgets":[{"limits":%s}]}`, `{"budgets":[{"limits":[{"limit":%s}]}]}`, `{"budgets":[{"alertThresholds":%s}]}`,
		`{"budgets":[{"alertThresholds":[%s]}]}`, `{"routes":[{"match":{"models":%s}}]}`, `{"routes":[{"targets":[{"weight":%s}]}]}`,
		`{"routes":[{"retries":%s}]}`, `{"routes":[{"rateLimits":[{"shadow":%s}]}]}`, `{"routes":[{"cache":%s}]}`,
		`{"routes":[{"guardrails":{"pii":%s}}]}`, `{"routes":[{"guardrails":{"output":{"maxLength":%s}}}]}`,
		`{"apiKeys":[{"orgs":[%s]}]}`,
	} {
		for _, v := range jsondiff.Values {
			out = append(out, []byte(`{"version":"`+SchemaVersion+`",`+fmt.Sprintf(tmpl, v)[1:]))
		}
	}
	return out
}

func (s *Snapshot) marshalForTest() ([]byte, error) { return json.Marshal(s) }

func mustJSON(t testing.TB, s *Snapshot) []byte {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return b
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	cases := wireCases(t)
	require.Greater(t, len(cases), 1000)
	for _, b := range cases {
		requireSameDecode(t, b)
	}
}

// The shorter way must be the one taken for what the controllers write, or it saves nothing.
// (Not for invalid UTF-8, which encoding/json writes as U+FFFD escaped and then reads back as
// U+FFFD, written unescaped: such a snapshot is decoded by encoding/json.)
func TestDecodeTakesTheShorterWayForWhatEncodeWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 50 {
		s := sealed(t, validUTF8Snapshot(t, rng, i%2 == 0))
		plain, err := json.Marshal(s)
		require.NoError(t, err)
		got, hash, ok := decodeCanonical(append(plain, '\n'))
		require.True(t, ok, "%s", plain)
		require.Equal(t, s.Hash, hash)
		jsondiff.RequireSameValue(t, s, got, plain)
	}
}

func TestDecodeRefusesTamperedAndCorruptSnapshots(t *testing.T) {
	s := sealed(t, &Snapshot{Providers: []Provider{{Name: "ns/p", Type: ProviderMock, Mock: &Mock{Reply: "hi"}, Models: []Model{{Name: "m"}}}}})
	enc, err := Encode(s)
	require.NoError(t, err)
	got, err := Decode(enc)
	require.NoError(t, err)
	require.Equal(t, s, got)

	tampered := bytes.Replace(mustJSON(t, s), []byte(`"reply":"hi"`), []byte(`"reply":"ho"`), 1)
	_, err = Decode(gzipped(t, tampered))
	require.ErrorContains(t, err, "does not match its content")

	corrupt := bytes.Clone(enc)
	corrupt[len(corrupt)/2] ^= 0xff
	_, err = Decode(corrupt)
	require.Error(t, err)

	_, err = Decode(enc[:len(enc)/2])
	require.ErrorContains(t, err, "failed to decode snapshot")
}

// FuzzDecode holds Decode to encoding/json on any input.
func FuzzDecode(f *testing.F) {
	for _, b := range wireCases(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { requireSameDecode(t, b) })
}

// validUTF8Snapshot is a random snapshot whose strings are valid UTF-8 (encoding/json's reading
// of its own encoding), so that its encoding is canonical.
func validUTF8Snapshot(t testing.TB, rng *rand.Rand, full bool) *Snapshot {
	var s *Snapshot
	require.NoError(t, json.Unmarshal(mustJSON(t, randomSnapshot(rng, full)), &s))
	return s
}

// requireCanonicalIsEncodingJSON fails if decodeCanonical accepts b and encoding/json reads b
// differently or hashes it differently.
func requireCanonicalIsEncodingJSON(t testing.TB, b []byte) {
	got, hash, ok := decodeCanonical(b)
	if !ok {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var want Snapshot
	require.NoError(t, dec.Decode(&want), "accepted %q", b)
	jsondiff.RequireSameValue(t, &want, got, b)
	c := want
	c.Hash = ""
	sum := sha256.Sum256(mustJSON(t, &c))
	require.Equal(t, hex.EncodeToString(sum[:]), hash)
}

// Every byte of canonical documents is changed in turn: whatever the shorter way still accepts,
// encoding/json must read alike.
func TestDecodeCanonicalAcceptsOnlyWhatEncodingJSONReadsAlike(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	accepted := 0
	for range 3 {
		doc := mustJSON(t, validUTF8Snapshot(t, rng, false))
		for i := 0; i < len(doc); i += 1 + rng.IntN(4) {
			for _, c := range []byte{'0', '-', '"', '\\', ' ', 'a', '}', 0xff} {
				b := bytes.Clone(doc)
				b[i] = c
				if _, _, ok := decodeCanonical(b); ok {
					accepted++
				}
				requireCanonicalIsEncodingJSON(t, b)
			}
		}
	}
	require.Positive(t, accepted, "changes within strings and numbers keep a document canonical")
}

// FuzzDecodeCanonical holds the shorter way alone to encoding/json: whatever it accepts,
// encoding/json decodes to the same snapshot with the same hash. Unlike FuzzDecode it needs no
// input whose hash matches to reach its acceptance.
func FuzzDecodeCanonical(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 4))
	for i := range 20 {
		f.Add(mustJSON(f, validUTF8Snapshot(f, rng, i%2 == 0)))
	}
	f.Add([]byte(`{"version":"","hash":"","providers":null,"budgets":null,"routes":null,"apiKeys":null}`))
	f.Fuzz(func(t *testing.T, b []byte) { requireCanonicalIsEncodingJSON(t, b) })
}
