//go:build ignore

// gencorpus writes pii_corpus.jsonl, the labelled corpus of the PII detector's precision and
// recall test. Values are generated with a fixed seed (valid Luhn, mod-97 and phone numbers are
// computed, not copied), then embedded in varied sentences; hard negatives are written to look
// like PII without being PII. Run from this folder: go run gencorpus.go
package main

import (
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

type label struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type entry struct {
	Text string  `json:"text"`
	PII  []label `json:"pii"`
}

var rng = rand.New(rand.NewPCG(42, 2026))

func pick[T any](xs []T) T { return xs[rng.IntN(len(xs))] }

func digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + rng.IntN(10)))
	}
	return b.String()
}

func luhnComplete(prefix string, length int) string {
	body := prefix + digits(length-len(prefix)-1)
	for d := 0; d < 10; d++ {
		c := body + string(rune('0'+d))
		if luhn(c) {
			return c
		}
	}
	panic("unreachable")
}

func luhn(ds string) bool {
	sum, double := 0, false
	for i := len(ds) - 1; i >= 0; i-- {
		d := int(ds[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// nonLuhn returns n random digits that fail the Luhn check: a random digit run, not a card.
func nonLuhn(n int) string {
	for {
		if d := digits(n); !luhn(d) {
			return d
		}
	}
}

func group(s string, sizes []int, sep string) string {
	var parts []string
	for _, sz := range sizes {
		parts = append(parts, s[:sz])
		s = s[sz:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, sep)
}

func card() string {
	type brand struct {
		prefix string
		length int
		groups []int
	}
	b := pick([]brand{
		{"4", 16, []int{4, 4, 4, 4}}, {"4", 13, []int{4, 4, 4}}, {"51", 16, []int{4, 4, 4, 4}},
		{"55", 16, []int{4, 4, 4, 4}}, {"2221", 16, []int{4, 4, 4, 4}}, {"34", 15, []int{4, 6, 5}},
		{"37", 15, []int{4, 6, 5}}, {"6011", 16, []int{4, 4, 4, 4}}, {"65", 16, []int{4, 4, 4, 4}},
		{"3530", 16, []int{4, 4, 4, 4}}, {"36", 14, []int{4, 6, 4}}, {"62", 16, []int{4, 4, 4, 4}},
		{"4", 19, []int{4, 4, 4, 4, 3}},
	})
	n := luhnComplete(b.prefix, b.length)
	switch rng.IntN(3) {
	case 0:
		return n
	case 1:
		return group(n, b.groups, " ")
	default:
		return group(n, b.groups, "-")
	}
}

var ibanSpecs = map[string]string{ // country → BBAN shape: n digit, a upper letter, c alnum
	"DE": "nnnnnnnnnnnnnnnnnn", "GB": "aaaannnnnnnnnnnnnn", "FR": "nnnnnnnnnnnnnnnnnnnnnnn",
	"ES": "nnnnnnnnnnnnnnnnnnnn", "IT": "annnnnnnnnnnnnnnnnnnnnn", "NL": "aaaannnnnnnnnn",
	"BE": "nnnnnnnnnnnn", "CH": "nnnnnnnnnnnnnnnnn", "AT": "nnnnnnnnnnnnnnnn", "PL": "nnnnnnnnnnnnnnnnnnnnnnnn",
	"SE": "nnnnnnnnnnnnnnnnnnnn", "NO": "nnnnnnnnnnn", "IE": "aaaannnnnnnnnnnnnn", "PT": "nnnnnnnnnnnnnnnnnnnnn",
}

func iban(validCheck bool) string {
	cc := pick([]string{"DE", "GB", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "PL", "SE", "NO", "IE", "PT"})
	var bban strings.Builder
	for _, k := range ibanSpecs[cc] {
		if k == 'a' {
			bban.WriteByte(byte('A' + rng.IntN(26)))
		} else {
			bban.WriteByte(byte('0' + rng.IntN(10)))
		}
	}
	num := new(big.Int)
	var conv strings.Builder
	for _, c := range bban.String() + cc + "00" {
		if c >= 'A' && c <= 'Z' {
			fmt.Fprintf(&conv, "%d", c-'A'+10)
		} else {
			conv.WriteRune(c)
		}
	}
	num.SetString(conv.String(), 10)
	check := 98 - int(new(big.Int).Mod(num, big.NewInt(97)).Int64())
	if !validCheck {
		check = (check+1+rng.IntN(90))%97 + 2
		if check > 98 {
			check = 2
		}
	}
	s := fmt.Sprintf("%s%02d%s", cc, check, bban.String())
	if rng.IntN(2) == 0 {
		return group(s, []int{4, 4, 4, 4, 4, 4, 4, 4}[:len(s)/4], " ")
	}
	return s
}

func ssn() string {
	var area int
	for area == 0 || area == 666 {
		area = 1 + rng.IntN(899)
	}
	s := fmt.Sprintf("%03d-%02d-%04d", area, 1+rng.IntN(99), 1+rng.IntN(9999))
	if rng.IntN(4) == 0 {
		return strings.ReplaceAll(s, "-", " ")
	}
	return s
}

func usPhone() string {
	area := pick([]string{"212", "310", "415", "617", "646", "202", "312", "404", "512", "206", "303", "713"})
	exch := fmt.Sprintf("%d%s", 2+rng.IntN(8), digits(2))
	line := digits(4)
	switch rng.IntN(6) {
	case 0:
		return fmt.Sprintf("(%s) %s-%s", area, exch, line)
	case 1:
		return fmt.Sprintf("%s-%s-%s", area, exch, line)
	case 2:
		return fmt.Sprintf("%s.%s.%s", area, exch, line)
	case 3:
		return fmt.Sprintf("+1 %s %s %s", area, exch, line)
	case 4:
		return fmt.Sprintf("+1 (%s) %s-%s", area, exch, line)
	default:
		return fmt.Sprintf("1-%s-%s-%s", area, exch, line)
	}
}

func intlPhone() string {
	region := pick([]string{"GB", "DE", "FR", "IN", "AU", "BR", "JP", "ES", "IT", "NL", "MX", "ZA", "SE", "CH", "CA", "SG"})
	typ := pick([]phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE})
	n := phonenumbers.GetExampleNumberForType(region, typ)
	if n == nil {
		n = phonenumbers.GetExampleNumber(region)
	}
	if rng.IntN(3) == 0 {
		return phonenumbers.Format(n, phonenumbers.E164)
	}
	return phonenumbers.Format(n, phonenumbers.INTERNATIONAL)
}

const b62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randFrom(alphabet string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

func secret() string {
	switch rng.IntN(11) {
	case 0:
		return "sk-proj-" + randFrom(b62+"_-", 40) + "T3BlbkFJ" + randFrom(b62+"_-", 40)
	case 1:
		return "sk-" + randFrom(b62, 48)
	case 2:
		return "sk-ant-api03-" + randFrom(b62+"_-", 93) + "AA"
	case 3:
		return pick([]string{"AKIA", "ASIA"}) + randFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	case 4:
		return pick([]string{"ghp_", "gho_", "ghs_"}) + randFrom(b62, 36)
	case 5:
		return "AIza" + randFrom(b62+"_-", 35)
	case 6:
		return pick([]string{"xoxb-", "xoxp-"}) + digits(11) + "-" + digits(12) + "-" + randFrom(b62, 24)
	case 7:
		body := randFrom(b62+"+/", 64) + "\n" + randFrom(b62+"+/", 64) + "\n" + randFrom(b62+"+/", 40) + "=="
		kind := pick([]string{"RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"})
		return "-----BEGIN " + kind + "-----\n" + body + "\n-----END " + kind + "-----"
	case 8:
		hdr := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
		return hdr + ".eyJ" + randFrom(b62+"_-", 60) + "." + randFrom(b62+"_-", 43)
	case 9:
		return randFrom(b62+"+/", 40) // e.g. an AWS secret access key
	default:
		return "github_pat_" + randFrom(b62, 22) + "_" + randFrom(b62, 59)
	}
}

func ipv4() string {
	return fmt.Sprintf("%d.%d.%d.%d", pick([]int{10, 172, 192, 8, 34, 52, 100, 203}), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
}

func ipv6() string {
	h := func() string { return fmt.Sprintf("%x", rng.IntN(0x10000)) }
	switch rng.IntN(6) {
	case 0:
		return strings.Join([]string{"2001", "db8", h(), h(), h(), h(), h(), h()}, ":")
	case 1:
		return "2001:db8::" + h()
	case 2:
		return "fe80::" + h() + ":" + h() + ":" + h() + ":" + h()
	case 3:
		return "::ffff:" + ipv4()
	case 4:
		return strings.ToUpper("2a00:1450:4001:" + h() + "::" + h())
	default:
		return "2606:4700:" + h() + "::" + h() + ":" + h()
	}
}

func email() string {
	first := pick([]string{"john", "maria", "li.wei", "o.connor", "anna-lena", "dev+alerts", "j_smith", "Priya", "noreply", "x"})
	dom := pick([]string{"example.com", "mail.example.org", "acme.co.uk", "uni-berlin.de", "EXAMPLE.IO", "sub.domain.example.net", "gmail.com"})
	return first + fmt.Sprint(rng.IntN(100)) + "@" + dom
}

var positiveTemplates = map[string][]string{
	"email":       {"Contact me at %s for details.", "Email: %s", "<%s>", "Send the invoice to %s, thanks!", "reply-to=%s", "%s wrote:"},
	"phone":       {"Call me at %s tomorrow.", "Phone: %s", "You can reach our office on %s.", "tel %s (ask for Sam)", "Mobile number is %s."},
	"credit_card": {"My card number is %s, exp 09/27.", "Card: %s", "charge %s please", "Use the card ending... actually the full number is %s."},
	"iban":        {"Please wire the money to %s.", "IBAN: %s", "Bank account %s (Sparkasse)", "Refund to %s, thanks."},
	"ssn":         {"My SSN is %s.", "Social security number: %s", "SSN %s on file", "ss# %s"},
	"ipv4":        {"The server is at %s.", "ssh admin@%s", "Blocked %s after 5 failed logins", "curl http://%s:8080/health", "subnet %s/24"},
	"ipv6":        {"The host resolves to %s.", "Ping %s now", "AAAA record: %s", "listen [%s]:443"},
	"secret":      {"Here is my key: %s", "export OPENAI_API_KEY=%s", "token=%s", "Use this:\n%s\nthanks", "Authorization: Bearer %s"},
}

var gens = map[string]func() string{
	"email": email, "credit_card": card, "iban": func() string { return iban(true) }, "ssn": ssn,
	"ipv4": ipv4, "ipv6": ipv6, "secret": secret,
	"phone": func() string {
		if rng.IntN(2) == 0 {
			return usPhone()
		}
		return intlPhone()
	},
}

// negatives look like PII and are not: each line is a template filled with a generator.
var negatives = []func() string{
	func() string { return "Order #" + digits(10+rng.IntN(3)) + " has shipped." },
	func() string { return "Your order number is " + digits(8) + "-" + digits(4) + "." },
	func() string {
		return fmt.Sprintf("Meeting on 2024-%02d-%02d at 10:%02d.", 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(60))
	},
	func() string {
		return fmt.Sprintf("Logged at 2025-%02d-%02d %02d:%02d:%02d UTC", 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60))
	},
	func() string { return fmt.Sprintf("Due %02d/%02d/2026, invoice 4471.", 1+rng.IntN(12), 1+rng.IntN(28)) },
	func() string {
		return fmt.Sprintf("Born %02d.%02d.19%02d in Lyon", 1+rng.IntN(28), 1+rng.IntN(12), rng.IntN(100))
	},
	func() string {
		return fmt.Sprintf("Upgrade to version %d.%d.%d.%d today", rng.IntN(20), rng.IntN(20), rng.IntN(20), rng.IntN(200))
	},
	func() string {
		return fmt.Sprintf("Release %d.%d.%d.%d fixes the bug", 1+rng.IntN(9), rng.IntN(20), rng.IntN(20), rng.IntN(9999))
	},
	func() string {
		return fmt.Sprintf("Requires Go 1.%d.%d or v%d.%d.%d", rng.IntN(30), rng.IntN(9), rng.IntN(9), rng.IntN(30), rng.IntN(30))
	},
	func() string {
		n := luhnComplete(pick([]string{"4", "51", "6011"}), 16)
		bad := n[:15] + string(rune('0'+(int(n[15]-'0')+1+rng.IntN(8))%10))
		return "Reference " + group(bad, []int{4, 4, 4, 4}, " ") + " was rejected"
	},
	func() string { return "Tracking: " + nonLuhn(16) },
	func() string {
		return fmt.Sprintf("Request id %08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.IntN(0x10000), rng.IntN(0x10000), rng.IntN(0x10000), rng.Uint64()&0xffffffffffff)
	},
	func() string { return "commit " + randFrom("0123456789abcdef", 40) + " fixes the build" },
	func() string { return "sha256: " + randFrom("0123456789abcdef", 64) },
	func() string {
		return fmt.Sprintf("Total: $%d,%03d.%02d incl. VAT", 1+rng.IntN(99), rng.IntN(1000), rng.IntN(100))
	},
	func() string { return fmt.Sprintf("Zip code %05d, suite %d", rng.IntN(99999), rng.IntN(999)) },
	func() string { return "ISBN 978-" + digits(1) + "-" + digits(2) + "-" + digits(6) + "-" + digits(1) },
	func() string {
		return fmt.Sprintf("Coordinates %d.%04d, -%d.%04d", 10+rng.IntN(80), rng.IntN(10000), 10+rng.IntN(170), rng.IntN(10000))
	},
	func() string {
		return "IBAN-like but wrong checksum: " + iban(false)
	},
	func() string {
		return pick([]string{"000", "666", "912"}) + "-" + digits(2) + "-" + digits(4) + " is not an SSN"
	},
	func() string {
		return fmt.Sprintf("%d.%d.%d.%d is out of range", 256+rng.IntN(700), rng.IntN(256), rng.IntN(256), rng.IntN(256))
	},
	func() string {
		return "Ping me on Slack @" + pick([]string{"maria", "dev-team", "oncall"}) + " or mail admin@localhost"
	},
	func() string {
		return "MAC 00:1a:2b:" + fmt.Sprintf("%02x:%02x:%02x", rng.IntN(256), rng.IntN(256), rng.IntN(256))
	},
	func() string { return "std::vector<int> v; std::map<K, V> m; Foo::bar();" },
	func() string {
		return fmt.Sprintf("The call lasted %02d:%02d:%02d.", rng.IntN(3), rng.IntN(60), rng.IntN(60))
	},
	func() string { return "Call 555-" + digits(4) + " for the front desk" },
	func() string { return "Dial 123-456-" + digits(4) + " (not a real area code)" },
	func() string {
		return "The function " + pick([]string{"getUserAccountBalanceForCustomerReport2023", "handleIncomingWebhookEventsFromStripeV2", "ComputeMonthlyRecurringRevenueByRegion24"}) + " is slow"
	},
	func() string { return "See https://example.com/docs/getting-started/installation-guide/v2 for more" },
	func() string { return "path /usr/local/share/applications/some-long-application-name.desktop" },
	func() string { return "Population: " + digits(3) + "," + digits(3) + "," + digits(3) },
	func() string { return "Serial SN-" + digits(12) + " registered" },
	func() string {
		return fmt.Sprintf("Scored %d.%d%% on %d of %d tests", rng.IntN(100), rng.IntN(10), rng.IntN(500), 500)
	},
	func() string { return "Color #" + randFrom("0123456789abcdef", 6) + " and rgba(12, 34, 56, 0.5)" },
	func() string { return "Pi is 3.14159265358979 and e is 2.718281828" },
	func() string { return "Temporary password policy: at least 12 characters, 1 digit, 1 symbol." },
	func() string { return "Tickets " + group(nonLuhn(15), []int{4, 4, 4, 3}, " ") + " closed." },
	func() string { return "the sk- prefix marks OpenAI keys; AKIA marks AWS ones" },
	func() string { return "user@example is not an address, neither is @handle or a@b" },
}

// handwritten cases are real-world shapes written by hand, not generated: they keep the
// corpus honest about what the generator's templates do not cover.
var handwritten = []entry{
	{"Reach me at jane.doe@company.com or (212) 555-0147 after 5pm.", []label{{"email", "jane.doe@company.com"}, {"phone", "(212) 555-0147"}}},
	{"My number's 415.867.5309, text anytime", []label{{"phone", "415.867.5309"}}},
	{"Tel.: +49 (0)30 901820", []label{{"phone", "+49 (0)30 901820"}}},
	{"WhatsApp +55 11 91234-5678 please", []label{{"phone", "+55 11 91234-5678"}}},
	{"Hotline +81 3-1234-5678 (Tokyo office)", []label{{"phone", "+81 3-1234-5678"}}},
	{"call +33 6 12 34 56 78 if urgent", []label{{"phone", "+33 6 12 34 56 78"}}},
	{"Customer wrote: 'card is 5500 0000 0000 0004, cvv 123'", []label{{"credit_card", "5500 0000 0000 0004"}}},
	{"pay with 4012888888881881 (Visa)", []label{{"credit_card", "4012888888881881"}}},
	{"amex: 3714-496353-98431", []label{{"credit_card", "3714-496353-98431"}}},
	{"Überweisung an DE44 5001 0517 5407 3249 31, Verwendungszweck 2024-17", []label{{"iban", "DE44 5001 0517 5407 3249 31"}}},
	{"IBAN FR14 2004 1010 0505 0001 3M02 606 (Paris)", []label{{"iban", "FR14 2004 1010 0505 0001 3M02 606"}}},
	{"NL91ABNA0417164300", []label{{"iban", "NL91ABNA0417164300"}}},
	{"ssn:078-05-1121", []label{{"ssn", "078-05-1121"}}},
	{"SSN 536 90 4399, DOB 1984-02-11", []label{{"ssn", "536 90 4399"}}},
	{"Gateway 192.168.0.1, DNS 8.8.8.8 and 1.1.1.1.", []label{{"ipv4", "192.168.0.1"}, {"ipv4", "8.8.8.8"}, {"ipv4", "1.1.1.1"}}},
	{"X-Forwarded-For: 203.0.113.195, 70.41.3.18", []label{{"ipv4", "203.0.113.195"}, {"ipv4", "70.41.3.18"}}},
	{"bind to [::1]:8080 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334", []label{{"ipv6", "::1"}, {"ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"}}},
	{"client fe80::1ff:fe23:4567:890a%eth0 connected", []label{{"ipv6", "fe80::1ff:fe23:4567:890a"}}},
	{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYz9a8Qk2LmZ", []label{{"secret", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYz9a8Qk2LmZ"}}},
	{"SLACK_BOT_TOKEN=xoxb-2048-4096-aBcDeFgHiJkLmNoPqRsTuVwX", []label{{"secret", "xoxb-2048-4096-aBcDeFgHiJkLmNoPqRsTuVwX"}}},
	{"git clone https://ghp_R8tV2mQ7xY4nB6cK1pL9sD3fG5hJ0wE2aZ4u@github.com/acme/app", []label{{"secret", "ghp_R8tV2mQ7xY4nB6cK1pL9sD3fG5hJ0wE2aZ4u"}}},
	{"Email support@acme.io, not support@acme (typo)", []label{{"email", "support@acme.io"}}},
	{"Mail: FIRST.LAST+billing@Sub.Example.CO.UK", []label{{"email", "FIRST.LAST+billing@Sub.Example.CO.UK"}}},
	// Known limitation: national formats of other countries than the default region (US).
	{"ring our London desk on 020 7946 0958", []label{{"phone", "020 7946 0958"}}},
	{"Sydney mobile 0412 345 678", []label{{"phone", "0412 345 678"}}},
	// hard negatives
	{"The meeting is at 10:30, room 4.12, floor 3.", []label{}},
	{"Invoice INV-2024-000123 totals EUR 1.234,56", []label{}},
	{"Build 20240115.3 passed in 12.5 s", []label{}},
	{"Python 3.11.4 and Node 20.10.0 are installed", []label{}},
	{"chmod 0755 and umask 022", []label{}},
	{"The answer is 4111 apples and 1111 oranges", []label{}},
	{"Lat/long: 48.8566, 2.3522", []label{}},
	{"Docker image sha256:9b2a3f1c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a", []label{}},
	{"Use the ExampleKeyThatIsNotReallyASecretAtAll parameter", []label{}},
	{"Call me maybe, at 5 or 6 pm", []label{}},
	{"Score 98-76-5432 in the tournament bracket", []label{}},
	{"isbn 0-306-40615-2", []label{}},
	{"The range 10.0.0.0 - 10.255.255.255 is private", []label{{"ipv4", "10.0.0.0"}, {"ipv4", "10.255.255.255"}}},
}

func main() {
	var out []entry
	for _, typ := range []string{"email", "phone", "credit_card", "iban", "ssn", "ipv4", "ipv6", "secret"} {
		n := 30
		if typ == "phone" || typ == "secret" {
			n = 45
		}
		for i := 0; i < n; i++ {
			v := gens[typ]()
			tpl := pick(positiveTemplates[typ])
			out = append(out, entry{Text: fmt.Sprintf(tpl, v), PII: []label{{typ, v}}})
		}
	}
	// Mixed texts with several types at once.
	for range 25 {
		e, p, c := email(), usPhone(), card()
		out = append(out, entry{
			Text: fmt.Sprintf("Hi, I'm Dana (%s). Call %s; my card %s expires soon.", e, p, c),
			PII:  []label{{"email", e}, {"phone", p}, {"credit_card", c}},
		})
	}
	for range 150 {
		out = append(out, entry{Text: pick(negatives)(), PII: []label{}})
	}
	out = append(out, handwritten...)
	f, err := os.Create("pii_corpus.jsonl")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	for _, e := range out {
		if err := enc.Encode(e); err != nil {
			panic(err)
		}
	}
	fmt.Println("wrote", len(out), "cases")
}
