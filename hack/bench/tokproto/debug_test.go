package tokproto

import (
	"fmt"
	"testing"

	"github.com/dlclark/regexp2/v2"
)

const pat = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

func TestDebugDiff(t *testing.T) {
	re := regexp2.MustCompile(pat, regexp2.None)
	c, f := lib(t)
	for _, s := range []string{" \n \nั", " \n \nx", " \n \n#", " \n \n", "a \n \nb", "\n \nx", "  \n  \n  x", "\n\u0e31"} {
		var lp []string
		m, _ := re.FindStringMatch(s)
		for m != nil {
			lp = append(lp, m.String())
			m, _ = re.FindNextMatch(m)
		}
		ids, _, _ := c.Encode(s)
		var mine []string
		for i := 0; i < len(s); {
			e, _ := o200kPiece(s, i)
			mine = append(mine, s[i:e])
			i = e
		}
		fmt.Printf("%q\n lib  %q %v\n mine %q %v\n", s, lp, ids, mine, f.encode(s))
		for _, p := range lp {
			a, _, _ := c.Encode(p)
			fmt.Printf("   %q lib %v mine %v\n", p, a, f.encode(p))
		}
	}
}
