package guard

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// streamSample holds every PII type in a few formats, between words and punctuation.
const streamSample = "Hi, I'm Dana (dana.smith+ai@mail.example.com). Call +1 (415) 555-2671 or 020 7946 0958; " +
	"card 4111-1111-1111-1111, Amex 3782 822463 10005. IBAN DE89 3704 0044 0532 0130 00. SSN 219-09-9998. " +
	"Servers 192.168.10.254 and 2001:db8::8a2e:370:7334, key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z " +
	"AKIAIOSFODNN7EXAMPL3 and token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2hlcmU. " +
	"Não é um número: version 1.2.3.4 — fim. ✓\n-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\nbye"

func TestStreamRedactorMatchesOneShotAtEverySplitPosition(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	want, spans := d.Redact(streamSample)
	types := map[string]bool{}
	for _, s := range spans {
		types[s.Type] = true
	}
	for _, typ := range AllTypes {
		require.True(t, types[typ], "the sample must contain a %s", typ)
	}
	for i := 0; i <= len(streamSample); i++ {
		r := NewStreamRedactor(d, nil)
		got := r.Write(streamSample[:i]) + r.Write(streamSample[i:]) + r.Flush()
		require.Equal(t, want, got, "split at byte %d", i)
		require.Equal(t, len(spans), r.Redactions(), "split at byte %d", i)
	}
}

func TestStreamRedactorMatchesOneShotAtEveryThreeWaySplit(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	sample := "mail a.b@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111, ip ::1."
	want, _ := d.Redact(sample)
	for i := 0; i <= len(sample); i++ {
		for j := i; j <= len(sample); j++ {
			r := NewStreamRedactor(d, nil)
			got := r.Write(sample[:i]) + r.Write(sample[i:j]) + r.Write(sample[j:]) + r.Flush()
			require.Equal(t, want, got, "split at %d and %d", i, j)
		}
	}
}

func TestStreamRedactorByteByByteNeverLeaksAValue(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	r := NewStreamRedactor(d, nil)
	var out strings.Builder
	for i := 0; i < len(streamSample); i++ {
		out.WriteString(r.Write(streamSample[i : i+1]))
		// At no point may a released prefix contain any part of a value.
		require.NotContains(t, out.String(), "dana.smith")
		require.NotContains(t, out.String(), "4111")
		require.NotContains(t, out.String(), "sk-proj")
	}
	out.WriteString(r.Flush())
	want, _ := d.Redact(streamSample)
	require.Equal(t, want, out.String())
}

func TestStreamRedactorReleasesProseWithoutWaitingForTheEnd(t *testing.T) {
	r := NewStreamRedactor(NewDetector(DetectorOptions{}), nil)
	got := r.Write("The quick brown fox jumps over the lazy dog. ")
	require.Equal(t, "The quick brown fox jumps over the lazy dog. ", got)
	require.Equal(t, "[EMAIL]", r.Write("x@example.org")+r.Flush())
}

func TestStreamRedactorRedactsOnlyTheConfiguredTypes(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	r := NewStreamRedactor(d, []string{TypeEmail})
	got := r.Write("a@example.com 4111 1111 ") + r.Write("1111 1111") + r.Flush()
	require.Equal(t, "[EMAIL] 4111 1111 1111 1111", got)
}

func TestStreamRedactorHoldsAnOpenKeyBlockAndRedactsItWhole(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	body := strings.Repeat("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n", 60)
	text := "key:\n-----BEGIN PRIVATE KEY-----\n" + body + "-----END PRIVATE KEY-----\nthanks"
	r := NewStreamRedactor(d, nil)
	var out strings.Builder
	for i := 0; i < len(text); i += 3 {
		out.WriteString(r.Write(text[i:min(i+3, len(text))]))
		require.NotContains(t, out.String(), "MIIE")
	}
	out.WriteString(r.Flush())
	require.Equal(t, "key:\n[SECRET]\nthanks", out.String())
}

func TestStreamRedactorMatchesOneShotOnALongTextInSmallChunks(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	text := strings.Repeat(streamSample+"\n", 6)
	want, _ := d.Redact(text)
	for _, size := range []int{1, 2, 7, 64, 1000} {
		r := NewStreamRedactor(d, nil)
		var out strings.Builder
		for i := 0; i < len(text); i += size {
			out.WriteString(r.Write(text[i:min(i+size, len(text))]))
		}
		out.WriteString(r.Flush())
		require.Equal(t, want, out.String(), "chunks of %d bytes", size)
	}
}
