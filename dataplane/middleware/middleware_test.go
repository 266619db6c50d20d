package middleware_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/middleware"
)

func TestAuthorizeLetsAKeyActOnlyForItsOrgs(t *testing.T) {
	admin := &config.APIKey{Name: "a", Role: config.RoleAdmin}
	anyOrg := &config.APIKey{Name: "b", Role: config.RoleApp}
	acme := &config.APIKey{Name: "c", Role: config.RoleApp, Orgs: []string{"acme"}}
	two := &config.APIKey{Name: "d", Role: config.RoleApp, Orgs: []string{"acme", "globex"}}
	cases := map[string]struct {
		key     *config.APIKey
		org     string
		want    string
		allowed bool
	}{
		"an admin acts for any org":                  {admin, "initech", "initech", true},
		"an app key without orgs acts for any org":   {anyOrg, "initech", "initech", true},
		"an app key acts for its org":                {acme, "acme", "acme", true},
		"an app key with one org defaults to it":     {acme, "", "acme", true},
		"an app key may not act for another org":     {acme, "globex", "", false},
		"an app key with several orgs must name one": {two, "", "", false},
		"an app key with several orgs acts for each": {two, "globex", "globex", true},
		"no key is never allowed":                    {nil, "acme", "", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			org, err := middleware.Authorize(tc.key, tc.org)
			if !tc.allowed {
				require.NotNil(t, err)
				require.Contains(t, []int{401, 403}, err.Status)
				return
			}
			require.Nil(t, err)
			require.Equal(t, tc.want, org)
		})
	}
}
