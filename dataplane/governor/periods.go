package governor

import (
	"sync"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// PeriodBounds returns the budget period containing t, in loc: daily from local midnight, weekly
// from Monday 00:00 (ISO weeks), monthly from the 1st 00:00. The end is the next period's start,
// computed with time.Date so that DST changes (23- and 25-hour days) and month ends (28–31 days)
// roll over at the right instant; a midnight that does not exist locally is normalized by
// time.Date to the first instant of the day. The label is the start's local date, "2006-01-02".
func PeriodBounds(t time.Time, loc *time.Location, period string) (start, end time.Time, label string) {
	lt := t.In(loc)
	y, m, d := lt.Date()
	switch period {
	case config.PeriodWeekly:
		back := (int(lt.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		end = time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	case config.PeriodMonthly:
		start = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		end = time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	default: // daily
		start = time.Date(y, m, d, 0, 0, 0, 0, loc)
		end = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
	return start, end, start.Format("2006-01-02")
}

var locations sync.Map // name → *time.Location

// location resolves an IANA zone once; an unknown or empty zone is UTC (the compiler validates
// zones, so this only happens with a hand-written snapshot).
func location(name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		l = time.UTC
	}
	locations.Store(name, l)
	return l
}
