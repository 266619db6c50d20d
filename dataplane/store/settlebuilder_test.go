package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDetailCellPrefixSpellsTheDetailCell: the field prefix a checkpoint's ledger op sends is the
// detail cell's dimension and key, each followed by the separator, for records with and without
// each part.
func TestDetailCellPrefixSpellsTheDetailCell(t *testing.T) {
	parts := []string{"", "u1", "o:1", "team/app", "gpt-4o", "team/mock"}
	n := 0
	for _, user := range parts {
		for _, org := range parts {
			for _, key := range parts[:3] {
				for _, model := range parts[3:] {
					u := UsageRecord{User: user, Org: org, APIKey: key, Model: model, Provider: parts[(n%5)+1]}
					n++
					c := detailCell(&u)
					require.Equal(t, c.Dim+KeySep+c.Key+KeySep, detailCellPrefix(&u))
				}
			}
		}
	}
}

// TestProgressStringsSpellWhatEachBuilderWould: the strings a checkpoint spells in one
// allocation are those progressKey, ledgerKeyOf, "l"+tag and detailCellPrefix spell apart, for
// orgs that keep their name as tag, orgs that do not, and records without an org.
func TestProgressStringsSpellWhatEachBuilderWould(t *testing.T) {
	hour := []byte("1764122400")
	for _, prefix := range []string{"", "p:"} {
		r := &Redis{prefix: prefix}
		for _, org := range []string{"", "o1", GlobalTag, "~x", "a{b}"} {
			for _, user := range []string{"", "u1"} {
				u := UsageRecord{User: user, Org: org, APIKey: "team/app", Model: "gpt-4o", Provider: "team/mock"}
				ps := r.progressStrings("id-1", &u, hour)
				require.Equal(t, r.progressKey("", "id-1"), ps.progress)
				require.Equal(t, r.ledgerKeyOf(GlobalTag, hour), ps.globalKey)
				require.Equal(t, detailCellPrefix(&u), ps.cellPrefix)
				if org == "" {
					require.Empty(t, ps.orgKey)
					require.Empty(t, ps.orgField)
				} else {
					require.Equal(t, r.ledgerKeyOf(OrgTag(org), hour), ps.orgKey)
					require.Equal(t, "l"+OrgTag(org), ps.orgField)
				}
			}
		}
	}
}
