package guard

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDetect(t *testing.T) {
	tests := map[string]struct {
		text string
		want []Span
	}{
		"an email in a sentence":          {"mail john.smith@example.com now", []Span{{TypeEmail, 5, 27}}},
		"a US phone in national format":   {"call (415) 555-2671 today", []Span{{TypePhone, 5, 19}}},
		"a UK phone in international":     {"ring +44 20 7946 0958", []Span{{TypePhone, 5, 21}}},
		"a bare number after a keyword":   {"Call 4155552671", []Span{{TypePhone, 5, 15}}},
		"a bare number without a keyword": {"ref 4155552671", nil},
		"a Visa card with spaces":         {"card 4111 1111 1111 1111.", []Span{{TypeCreditCard, 5, 24}}},
		"an Amex card grouped 4-6-5":      {"amex 3782 822463 10005", []Span{{TypeCreditCard, 5, 22}}},
		"a card number failing Luhn":      {"card 4111 1111 1111 1112", nil},
		"an IBAN grouped by four":         {"IBAN DE89 3704 0044 0532 0130 00.", []Span{{TypeIBAN, 5, 32}}},
		"an IBAN with a bad checksum":     {"IBAN DE88 3704 0044 0532 0130 00.", nil},
		"an SSN":                          {"SSN 219-09-9998", []Span{{TypeSSN, 4, 15}}},
		"an SSN in the 9xx range":         {"SSN 912-09-9998", nil},
		"an IPv4 address":                 {"host 10.0.0.12:8080", []Span{{TypeIPv4, 5, 14}}},
		"a version is not an IPv4":        {"version 1.2.3.4", nil},
		"a five-part version":             {"build 1.2.3.4.5", nil},
		"an IPv6 address":                 {"at 2001:db8::8a2e:370:7334.", []Span{{TypeIPv6, 3, 26}}},
		"a time is not an IPv6":           {"at 12:30:45", nil},
		"a MAC address is not an IPv6":    {"mac 00:1a:2b:3c:4d:5e", nil},
		"an OpenAI key":                   {"OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", []Span{{TypeSecret, 15, 49}}},
		"an AWS access key id":            {"AKIAIOSFODNN7EXAMPL3", []Span{{TypeSecret, 0, 20}}},
		"a hex digest is not a secret":    {"sha e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", nil},
		"a UUID is not a secret":          {"id 123e4567-e89b-12d3-a456-426614174000", nil},
		"a camelCase identifier":          {"getUserAccountBalanceForCustomer2023Q4Report", nil},
		"offsets count code points": {
			"größe → a@example.com", []Span{{TypeEmail, 8, 21}},
		},
	}
	d := NewDetector(DetectorOptions{})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, d.Detect(tc.text))
		})
	}
}

func TestDetectOnlyTheRequestedTypes(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	text := "a@example.com 10.0.0.1"
	require.Equal(t, []Span{{TypeIPv4, 14, 22}}, d.Detect(text, TypeIPv4))
	require.Equal(t, []Span{{TypeCreditCard, 1, 20}}, d.Detect("(4111 1111 1111 1111)", TypeCreditCard))
	require.Equal(t, []Span{{TypeCreditCard, 1, 20}}, d.Detect("(4111 1111 1111 1111)"))
}

func TestDetectWithAnotherDefaultRegion(t *testing.T) {
	d := NewDetector(DetectorOptions{DefaultRegion: "GB"})
	require.Equal(t, []Span{{TypePhone, 5, 18}}, d.Detect("ring 020 7946 0958"))
}

func TestRedactUsesTypedPlaceholders(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	got, spans := d.Redact("mail a@example.com or call +1 415-555-2671, card 4111111111111111")
	require.Equal(t, "mail [EMAIL] or call [PHONE], card [CREDIT_CARD]", got)
	require.Len(t, spans, 3)
}

func TestDetectManyUnterminatedKeyHeadersInOnePass(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	text := strings.Repeat("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n", 2000)
	spans := d.Detect(text)
	require.Len(t, spans, 2000)
	require.Equal(t, Span{TypeSecret, 0, 36}, spans[0])
}

func TestDetectAPrivateKeyBlockAfterUnterminatedHeaders(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	block := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"
	text := strings.Repeat("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n", 50) + "x " + block
	spans := d.Detect(text)
	require.Len(t, spans, 51)
	require.Equal(t, len([]rune(text)), spans[50].End)
	require.Equal(t, len([]rune(text))-len(block), spans[50].Start)
}
