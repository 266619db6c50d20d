// Package guard implements the guardrails of a route: personal-data detection and redaction
// (one-shot and streamed), a toxicity scorer, and output validation (JSON, JSON Schema, maximum
// length, banned phrases), combined by [Engine] per AIRoutePolicy guardrails.
//
// Detection is one pass over the text: a switch on each byte starts an extractor only where
// its shape can begin (an '@', a digit at the start of a run, a letter at a token start…), and
// each candidate is then confirmed by a validator (libphonenumber, Luhn, mod-97, net/netip,
// entropy). Every extractor reads a bounded neighbourhood of its start, which is what lets
// [StreamRedactor] hold back only the characters a match could still span.
package guard
