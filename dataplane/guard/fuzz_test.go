package guard

import (
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	streamSample,
	"call +1 (415) 555-2671, mail x@y.io",
	"4111 1111 1111 1111 1111 1111 1111 1111",
	"DE89 3704 0044 0532 0130 00 DE89",
	"::ffff:192.0.2.1 :: ::1 1::",
	"-----BEGIN RSA PRIVATE KEY-----\nAAAA",
	"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
	"a@b@c.de..f@@g.h",
	"+(((1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8",
	"\xff\xfe@\x80example.com",
}

// FuzzDetect checks the detector's invariants on arbitrary text: no panic, spans in bounds
// (code points), sorted and non-overlapping, and redaction consistent with the spans.
func FuzzDetect(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	d := NewDetector(DetectorOptions{})
	f.Fuzz(func(t *testing.T, text string) {
		spans := d.Detect(text)
		runes := utf8.RuneCountInString(text)
		prevEnd := 0
		for _, s := range spans {
			if s.Start < prevEnd || s.End <= s.Start || s.End > runes || !KnownType(s.Type) {
				t.Fatalf("bad span %+v (previous end %d, %d runes) in %q", s, prevEnd, runes, text)
			}
			prevEnd = s.End
		}
		redacted, again := d.Redact(text)
		if len(again) != len(spans) {
			t.Fatalf("Redact found %d spans, Detect %d", len(again), len(spans))
		}
		if len(spans) == 0 && redacted != text {
			t.Fatalf("nothing found but text changed")
		}
	})
}

// FuzzStreamRedactor checks that streamed redaction equals one-shot redaction for arbitrary
// text split at two arbitrary points, or written one byte at a time.
func FuzzStreamRedactor(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, uint16(i*7), uint16(i*13))
	}
	d := NewDetector(DetectorOptions{})
	f.Fuzz(func(t *testing.T, text string, a, b uint16) {
		i, j := int(a)%(len(text)+1), int(b)%(len(text)+1)
		if i > j {
			i, j = j, i
		}
		want, _ := d.Redact(text)
		r := NewStreamRedactor(d, nil)
		var got string
		if a%5 == 0 {
			// One byte at a time: the harshest chunking a provider could produce.
			for k := 0; k < len(text); k++ {
				got += r.Write(text[k : k+1])
			}
			got += r.Flush()
		} else {
			got = r.Write(text[:i]) + r.Write(text[i:j]) + r.Write(text[j:]) + r.Flush()
		}
		if got != want {
			t.Fatalf("split %d/%d of %q:\nstream   %q\none-shot %q", i, j, text, got, want)
		}
	})
}
