package guard

import (
	"context"
	"fmt"
	"strings"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// Toxicity categories, as in the /api/ai/moderate contract (OpenAI's moderation names).
const (
	CategoryHarassment = "harassment"
	CategorySelfHarm   = "self-harm"
	CategorySexual     = "sexual"
	CategoryHate       = "hate"
	CategoryViolence   = "violence"
)

// Categories lists every category, in a stable order.
var Categories = []string{CategoryHarassment, CategoryHate, CategorySexual, CategoryViolence, CategorySelfHarm}

// Scorer scores text per category from 0 (benign) to 1 (certainly in the category). The built-in
// [LexiconScorer] is always available; [ModeratorScorer] plugs a provider's moderation model in.
type Scorer interface {
	Score(ctx context.Context, text string) (map[string]float64, error)
}

// LexiconScorer is the built-in scorer: a heuristic, not a model. It matches a weighted lexicon
// of words and short phrases (after lower-casing and undoing common character substitutions
// such as "1d10t") and a few patterns (an insult aimed at "you"; "<group> are <slur-like
// word>"), and combines the weights of a category as independent evidence
// (1 − Π(1 − w)). One isolated word ("kill the process") stays well below the default 0.5
// threshold; explicit threats, slurs against groups and self-harm statements score above it.
// It misses sarcasm, context and most non-English text; routes that need better recall should
// name a provider moderation model.
type LexiconScorer struct{}

type weight struct {
	cat string
	w   float64
}

// lexicon maps one to three space-separated lower-case words to category weights.
var lexicon = map[string][]weight{
	// harassment
	"idiot": {{CategoryHarassment, 0.45}}, "stupid": {{CategoryHarassment, 0.35}}, "moron": {{CategoryHarassment, 0.5}},
	"loser": {{CategoryHarassment, 0.4}}, "dumb": {{CategoryHarassment, 0.3}}, "pathetic": {{CategoryHarassment, 0.4}},
	"worthless": {{CategoryHarassment, 0.45}}, "shut up": {{CategoryHarassment, 0.4}}, "you suck": {{CategoryHarassment, 0.6}},
	"nobody likes you": {{CategoryHarassment, 0.7}}, "go to hell": {{CategoryHarassment, 0.6}},
	"piece of shit": {{CategoryHarassment, 0.7}}, "fuck you": {{CategoryHarassment, 0.8}}, "screw you": {{CategoryHarassment, 0.6}},
	"ugly": {{CategoryHarassment, 0.25}}, "bitch": {{CategoryHarassment, 0.55}}, "asshole": {{CategoryHarassment, 0.6}},
	"bastard": {{CategoryHarassment, 0.5}}, "scum": {{CategoryHarassment, 0.45}, {CategoryHate, 0.2}},
	"kill yourself": {{CategoryHarassment, 0.9}, {CategorySelfHarm, 0.6}, {CategoryViolence, 0.4}},
	"kys":           {{CategoryHarassment, 0.85}, {CategorySelfHarm, 0.5}},
	// hate
	"subhuman": {{CategoryHate, 0.75}}, "untermensch": {{CategoryHate, 0.8}}, "inferior race": {{CategoryHate, 0.85}},
	"master race": {{CategoryHate, 0.7}}, "go back to your country": {{CategoryHate, 0.7}},
	"ethnic cleansing": {{CategoryHate, 0.8}, {CategoryViolence, 0.5}}, "white power": {{CategoryHate, 0.8}},
	"white supremacy": {{CategoryHate, 0.6}}, "race traitor": {{CategoryHate, 0.75}}, "vermin": {{CategoryHate, 0.35}},
	"exterminate": {{CategoryHate, 0.3}, {CategoryViolence, 0.5}}, "genocide": {{CategoryHate, 0.4}, {CategoryViolence, 0.5}},
	// sexual
	"porn": {{CategorySexual, 0.65}}, "porno": {{CategorySexual, 0.65}}, "pornography": {{CategorySexual, 0.6}},
	"nude": {{CategorySexual, 0.5}}, "nudes": {{CategorySexual, 0.65}}, "naked": {{CategorySexual, 0.4}},
	"have sex": {{CategorySexual, 0.65}}, "sex": {{CategorySexual, 0.35}}, "sexy": {{CategorySexual, 0.35}},
	"orgasm": {{CategorySexual, 0.7}}, "erotic": {{CategorySexual, 0.6}}, "blowjob": {{CategorySexual, 0.85}},
	"blow job": {{CategorySexual, 0.85}}, "horny": {{CategorySexual, 0.6}}, "nsfw": {{CategorySexual, 0.5}},
	"xxx": {{CategorySexual, 0.45}}, "penis": {{CategorySexual, 0.45}}, "vagina": {{CategorySexual, 0.45}},
	"boobs": {{CategorySexual, 0.5}}, "tits": {{CategorySexual, 0.5}}, "dick": {{CategorySexual, 0.35}, {CategoryHarassment, 0.2}},
	"masturbate": {{CategorySexual, 0.8}}, "fetish": {{CategorySexual, 0.5}}, "strip for me": {{CategorySexual, 0.8}},
	// violence
	"kill": {{CategoryViolence, 0.35}}, "murder": {{CategoryViolence, 0.6}}, "shoot": {{CategoryViolence, 0.3}},
	"stab": {{CategoryViolence, 0.55}}, "beat up": {{CategoryViolence, 0.5}}, "bomb": {{CategoryViolence, 0.4}},
	"blow up": {{CategoryViolence, 0.45}}, "massacre": {{CategoryViolence, 0.7}}, "torture": {{CategoryViolence, 0.6}},
	"behead": {{CategoryViolence, 0.8}}, "slit your throat": {{CategoryViolence, 0.95}, {CategoryHarassment, 0.7}},
	"i will kill": {{CategoryViolence, 0.9}}, "i'll kill": {{CategoryViolence, 0.9}}, "going to kill": {{CategoryViolence, 0.85}},
	"hurt you": {{CategoryViolence, 0.6}, {CategoryHarassment, 0.4}}, "kill you": {{CategoryViolence, 0.85}, {CategoryHarassment, 0.6}},
	"shoot you": {{CategoryViolence, 0.85}, {CategoryHarassment, 0.6}}, "gun": {{CategoryViolence, 0.15}},
	"bloodbath": {{CategoryViolence, 0.7}}, "mass shooting": {{CategoryViolence, 0.65}},
	// self-harm
	"suicide": {{CategorySelfHarm, 0.55}}, "suicidal": {{CategorySelfHarm, 0.7}}, "kill myself": {{CategorySelfHarm, 0.95}},
	"end my life": {{CategorySelfHarm, 0.9}}, "want to die": {{CategorySelfHarm, 0.85}}, "cut myself": {{CategorySelfHarm, 0.9}},
	"self harm": {{CategorySelfHarm, 0.7}}, "hang myself": {{CategorySelfHarm, 0.95}}, "overdose": {{CategorySelfHarm, 0.45}},
	"no reason to live": {{CategorySelfHarm, 0.8}}, "better off dead": {{CategorySelfHarm, 0.75}},
	"hurt myself": {{CategorySelfHarm, 0.85}}, "starve myself": {{CategorySelfHarm, 0.8}},
}

// groups and hateTargets drive the "<group> are <word>" pattern.
var (
	groupWords = set("jews", "muslims", "christians", "blacks", "whites", "asians", "mexicans", "immigrants", "refugees",
		"gays", "lesbians", "women", "arabs", "africans", "indians", "hindus", "latinos", "chinese", "migrants", "trans")
	hateTargets = set("animals", "vermin", "parasites", "criminals", "terrorists", "disgusting", "inferior", "scum",
		"trash", "rapists", "subhuman", "savages", "filth", "cockroaches", "rats", "diseased")
	secondPerson = set("you", "your", "you're", "youre", "u", "ur")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// Score implements [Scorer]; it never fails.
func (LexiconScorer) Score(_ context.Context, text string) (map[string]float64, error) {
	return lexiconScores(text), nil
}

// lexiconFirst holds the first word of every multi-word entry, so that n-grams are only
// looked up where one can start.
var lexiconFirst = func() map[string]bool {
	m := map[string]bool{}
	for k := range lexicon {
		if first, _, multi := strings.Cut(k, " "); multi {
			m[first] = true
		}
	}
	return m
}()

// categoryIndex maps a category to its slot in the score arrays.
var categoryIndex = func() map[string]int {
	m := make(map[string]int, len(Categories))
	for i, c := range Categories {
		m[c] = i
	}
	return m
}()

func lexiconScores(text string) map[string]float64 {
	norm, bounds := normalizeWords(text)
	var keep [5]float64 // Π(1 − w) per category, in Categories order
	for i := range keep {
		keep[i] = 1
	}
	hit := func(ws []weight) {
		for _, w := range ws {
			keep[categoryIndex[w.cat]] *= 1 - w.w
		}
	}
	word := func(i int) string { return norm[bounds[i][0]:bounds[i][1]] }
	insult, you := false, false
	for i := range bounds {
		w := word(i)
		if secondPerson[w] {
			you = true
		}
		maxN := 1
		if lexiconFirst[w] {
			maxN = 5
		}
		for n := 1; n <= maxN && i+n <= len(bounds); n++ {
			// Words are single-space separated in norm, so an n-gram is a substring: no copy.
			if ws, ok := lexicon[norm[bounds[i][0]:bounds[i+n-1][1]]]; ok {
				hit(ws)
				for _, x := range ws {
					insult = insult || (x.cat == CategoryHarassment && n == 1)
				}
			}
		}
		if groupWords[w] {
			for j := i + 1; j < len(bounds) && j <= i+4; j++ {
				if hateTargets[word(j)] {
					hit([]weight{{CategoryHate, 0.85}})
					break
				}
			}
			for j := i + 1; j < len(bounds) && j <= i+4; j++ {
				if v := word(j); v == "die" || v == "deported" || v == "exterminated" || v == "killed" {
					hit([]weight{{CategoryHate, 0.8}, {CategoryViolence, 0.5}})
					break
				}
			}
		}
	}
	if insult && you {
		// An insult aimed at the reader is harassment, not just a rude word.
		hit([]weight{{CategoryHarassment, 0.35}})
	}
	out := make(map[string]float64, len(Categories))
	for i, c := range Categories {
		out[c] = 1 - keep[i]
	}
	return out
}

// leetByte undoes one common character substitution ("1d10t", "$tupid").
func leetByte(c byte) byte {
	switch c {
	case '0':
		return 'o'
	case '1':
		return 'i'
	case '3':
		return 'e'
	case '4':
		return 'a'
	case '5', '$':
		return 's'
	case '7':
		return 't'
	case '@':
		return 'a'
	}
	return c
}

func isScoreWordByte(c byte) bool {
	return isAlnum(c) || c == '\'' || c == '$' || c == '@' || c > 127
}

// normalizeWords lower-cases text (ASCII; the lexicon is English) into words of letters,
// digits and apostrophes joined by single spaces, and returns the joined text with each word's
// byte range. A word mixing letters and digits is read as leetspeak ("1d10t" → "idiot").
func normalizeWords(text string) (string, [][2]int) {
	buf := make([]byte, 0, len(text))
	bounds := make([][2]int, 0, len(text)/5)
	i := 0
	for i < len(text) {
		for i < len(text) && !isScoreWordByte(text[i]) {
			i++
		}
		j := i
		for j < len(text) && isScoreWordByte(text[j]) {
			j++
		}
		ws, we := i, j
		i = j
		for ws < we && text[ws] == '\'' {
			ws++
		}
		for we > ws && text[we-1] == '\'' {
			we--
		}
		if ws == we {
			continue
		}
		if len(buf) > 0 {
			buf = append(buf, ' ')
		}
		start := len(buf)
		letter, leet := false, false
		for k := ws; k < we; k++ {
			c := text[k]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			letter = letter || (c >= 'a' && c <= 'z')
			leet = leet || leetByte(c) != c
			buf = append(buf, c)
		}
		if letter && leet {
			for k := start; k < len(buf); k++ {
				buf[k] = leetByte(buf[k])
			}
		}
		bounds = append(bounds, [2]int{start, len(buf)})
	}
	return string(buf), bounds
}

// ModeratorScorer scores with a provider's moderation model (OpenAI's omni-moderation), mapping
// its sub-categories ("harassment/threatening", "self-harm/intent"…) onto the five categories
// by taking the highest score of each family.
type ModeratorScorer struct {
	Moderator providers.Moderator
	// Model is the moderation model name, e.g. "omni-moderation-latest".
	Model string
}

// Score implements [Scorer].
func (m ModeratorScorer) Score(ctx context.Context, text string) (map[string]float64, error) {
	res, err := m.Moderator.Moderate(ctx, m.Model, []string{text})
	if err != nil {
		return nil, fmt.Errorf("failed to moderate with %s: %w", m.Model, err)
	}
	out := make(map[string]float64, len(Categories))
	for _, c := range Categories {
		out[c] = 0
	}
	for _, r := range res {
		for name, score := range r.Scores {
			family, _, _ := strings.Cut(name, "/")
			if _, ok := out[family]; ok && score > out[family] {
				out[family] = score
			}
		}
	}
	return out, nil
}
