// Package schedule computes the fire times of a cron schedule in a time
// zone, and what a scheduler does with a fire time that is due or was
// missed. The cron specs are parsed by github.com/robfig/cron/v3; this
// package adds the rules for the hours that daylight saving time skips or
// repeats, and for misfires:
//
//   - A fire time whose wall-clock time the clocks skip (02:30 on the night
//     they go forward from 02:00 to 03:00) fires once, as late as the clocks
//     moved: 03:30. robfig/cron passes over it, so that a daily job would not
//     run that day. Several such times (an hourly schedule's 02:00 and 02:30)
//     fire once, the first of them; a shifted time that another fire time
//     already covers fires once.
//   - A wall-clock time that the clocks repeat (02:30 on the night they go
//     back from 03:00 to 02:00) fires once, the first time: robfig/cron
//     fires it twice.
//   - Each next fire time is computed from the one before, not from the
//     time the scheduler looked: a late scheduler does not move the
//     schedule.
//   - A fire time found later than a grace period after it was due is a
//     misfire (the schedulers were down): it runs once for the latest
//     missed time, or not at all, as the policy says — never a backlog.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is a parsed cron schedule in a time zone.
type Spec struct {
	text  string
	loc   *time.Location
	inLoc cron.Schedule // the spec in loc
	civil cron.Schedule // the spec in UTC, for wall-clock arithmetic
}

// Parse parses a cron spec: the standard five fields (minute, hour, day of
// month, month, day of week, and descriptors such as @daily), or six with
// a leading seconds field when seconds is set, in the IANA time zone tz
// (UTC when empty).
func Parse(spec string, seconds bool, tz string) (*Spec, error) {
	if strings.Contains(spec, "TZ=") {
		return nil, fmt.Errorf("cron spec %q: give the time zone on its own, not in the spec", spec)
	}
	loc := time.UTC
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("time zone %q: %w", tz, err)
		}
	}
	fields := cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor
	if seconds {
		fields |= cron.Second
	}
	p := cron.NewParser(fields)
	inLoc, err := p.Parse("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	civil, err := p.Parse("CRON_TZ=UTC " + spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	if inLoc.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("cron spec %q: never fires", spec)
	}
	return &Spec{text: spec, loc: loc, inLoc: inLoc, civil: civil}, nil
}

// String returns the spec as given.
func (s *Spec) String() string { return s.text }

// Location returns the spec's time zone.
func (s *Spec) Location() *time.Location { return s.loc }

// Next returns the first fire time strictly after after (zero if there is
// none within five years).
func (s *Spec) Next(after time.Time) time.Time {
	n := s.inLoc.Next(after)
	for !n.IsZero() && s.repeated(n) {
		n = s.inLoc.Next(n) // its first occurrence fired, or was before after
	}
	if n.IsZero() {
		return n
	}
	if g, ok := s.inGap(after, n); ok {
		return g
	}
	return n
}

// repeated reports whether t's wall-clock time also occurred at an earlier
// instant: the clocks went back over it.
func (s *Spec) repeated(t time.Time) bool {
	_, before := t.Add(-3 * time.Hour).In(s.loc).Zone()
	_, at := t.In(s.loc).Zone()
	back := time.Duration(before-at) * time.Second
	return back > 0 && civilOf(t.Add(-back).In(s.loc)) == civilOf(t.In(s.loc))
}

// inGap returns the first fire time between after and n that the clocks
// skipped, shifted by the size of the skip: the wall-clock time the spec
// matches in a gap of daylight saving time, fired as late as the clocks
// moved.
func (s *Spec) inGap(after, n time.Time) (time.Time, bool) {
	_, o1 := after.In(s.loc).Zone()
	_, o2 := n.In(s.loc).Zone()
	if o2 <= o1 {
		// No move forward between them (a move forward and back again
		// within one interval is left to the next interval).
		return time.Time{}, false
	}
	// The instant of the move: the first second with the later offset.
	lo, hi := after, n
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
		if _, o := mid.In(s.loc).Zone(); o == o1 {
			lo = mid
		} else {
			hi = mid
		}
	}
	move := hi
	skipped := time.Duration(o2-o1) * time.Second
	// The skipped wall-clock times, [start, start+skipped), as UTC.
	start := civilOf(move.Add(-time.Second).In(s.loc)).Add(time.Second)
	m := s.civil.Next(start.Add(-time.Second))
	if m.IsZero() || !m.Before(start.Add(skipped)) {
		return time.Time{}, false
	}
	shifted := move.Add(m.Sub(start))
	if !shifted.After(after) || !shifted.Before(n) {
		return time.Time{}, false
	}
	return shifted, true
}

// civilOf returns t's wall-clock time as the same numbers in UTC.
func civilOf(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC)
}

// Misfire is what a scheduler does with fire times it finds more than the
// grace period late.
type Misfire string

// The misfire policies.
const (
	// MisfireSkip runs none of them: the schedule goes on at its next fire
	// time after now.
	MisfireSkip Misfire = "skip"
	// MisfireRunOnce runs once, for the latest of them, then goes on at
	// the next fire time after now.
	MisfireRunOnce Misfire = "run-once"
)

// ParseMisfire returns the policy named s ("skip" or "run-once"); "" is
// MisfireSkip.
func ParseMisfire(s string) (Misfire, error) {
	switch Misfire(s) {
	case "", MisfireSkip:
		return MisfireSkip, nil
	case MisfireRunOnce:
		return MisfireRunOnce, nil
	}
	return "", fmt.Errorf("misfire policy %q: want skip or run-once", s)
}

// Plan is what to do with a schedule at a moment.
type Plan struct {
	// Run reports whether to fire now, for the time Fire.
	Run  bool
	Fire time.Time
	// Next is the schedule's next due time once this plan is carried out;
	// equal to the due time given when nothing is due.
	Next time.Time
	// Misfire reports that the due time was more than the grace late.
	Misfire bool
}

// maxCatchUp bounds the fire times Plan walks through to find the latest
// missed one; a schedule that fires oftener (every second, down for more
// than a day) is looked at over the last hour instead.
const maxCatchUp = 100_000

// Plan says what to do at now with the stored due time due: nothing before
// it; fire it when it is at most grace late; otherwise, by policy, fire
// the latest missed time once or none, and go on after now.
func (s *Spec) Plan(due, now time.Time, grace time.Duration, policy Misfire) Plan {
	switch {
	case now.Before(due):
		return Plan{Next: due}
	case now.Sub(due) <= grace:
		return Plan{Run: true, Fire: due, Next: s.Next(due)}
	}
	p := Plan{Next: s.Next(now), Misfire: true}
	if policy == MisfireRunOnce {
		p.Run, p.Fire = true, s.latest(due, now)
	}
	return p
}

// latest returns the last fire time from due (a fire time) to now.
func (s *Spec) latest(due, now time.Time) time.Time {
	latest, n := due, s.Next(due)
	for i := 1; ; i++ {
		if i == maxCatchUp {
			n = s.Next(now.Add(-time.Hour)) // frequent: only the end matters
		}
		if n.IsZero() || n.After(now) {
			return latest
		}
		latest, n = n, s.Next(n)
	}
}
