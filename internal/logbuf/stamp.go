package logbuf

import (
	"sync/atomic"
	"time"
)

// Every access line starts with its time in RFC 3339 with nanoseconds, and lines come many a
// second: the date, the time of day and the zone (t.AppendFormat works them out from the
// instant and the location's rules on every call) are kept for the last second seen, and
// only the fraction is spelled per line.

// stamp is the part of time.RFC3339Nano that one second in one location shares.
type stamp struct {
	sec  int64
	loc  *time.Location
	date []byte // "2006-01-02T15:04:05"
	zone []byte // "Z07:00"
}

var lastStamp atomic.Pointer[stamp]

// appendRFC3339Nano appends t.Format(time.RFC3339Nano).
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	s := lastStamp.Load()
	if s == nil || s.sec != sec || s.loc != loc {
		if y := t.Year(); y < 0 || y >= 10000 {
			return t.AppendFormat(b, time.RFC3339Nano) // never cached: RFC 3339 has no such years
		}
		s = &stamp{sec: sec, loc: loc, date: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	b = append(b, s.date...)
	if ns := t.Nanosecond(); ns != 0 {
		// ".999999999": nine digits, trailing zeros dropped (ns is not 0, so one digit stays).
		var f [10]byte
		f[0] = '.'
		for i := 9; i >= 1; i-- {
			f[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(f)
		for f[n-1] == '0' {
			n--
		}
		b = append(b, f[:n]...)
	}
	return append(b, s.zone...)
}
