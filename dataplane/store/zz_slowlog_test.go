package store_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/store/storetest"
)

func TestZZSlowlog(t *testing.T) {
	c := storetest.NewRedisClient(t, storetest.RedisURL(t))
	all := manyChecks(0)
	sets := map[string][]store.Check{"bucket": all[0:1], "sliding": all[1:2], "conc": all[2:3], "budget": all[3:4], "none": nil}
	for name, checks := range sets {
		st := store.NewRedis(c, store.RedisOptions{Prefix: fmt.Sprintf("sl%d:", time.Now().UnixNano())})
		c.ConfigSet(t.Context(), "slowlog-log-slower-than", "0")
		c.SlowLogReset(t.Context())
		for i := 0; i < 200; i++ {
			id := storetest.NewID()
			if checks == nil {
				c.EvalSha(t.Context(), "x", nil)
				continue
			}
			r, _ := st.Admit(t.Context(), &store.AdmitRequest{ID: id, Checks: checks})
			s := settlementFor(id, checks, r)
			s.Usage = nil
			_ = st.Settle(t.Context(), s)
		}
		logs, _ := c.SlowLogGet(t.Context(), 100000).Result()
		var v []time.Duration
		for _, l := range logs {
			if l.Args[0] == "evalsha" && len(l.Args) > 2 && (l.Args[2] == "2") {
				v = append(v, l.Duration)
			}
		}
		if len(v) == 0 {
			continue
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		t.Logf("%s n=%d median=%s p10=%s", name, len(v), v[len(v)/2], v[len(v)/10])
	}
}
