package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fires returns the first n fire times of spec in tz after from (RFC 3339),
// each written in tz.
func fires(t *testing.T, spec, tz, from string, n int) []string {
	t.Helper()
	s, err := Parse(spec, false, tz)
	require.NoError(t, err)
	at, err := time.Parse(time.RFC3339, from)
	require.NoError(t, err)
	var out []string
	for range n {
		at = s.Next(at)
		out = append(out, at.In(s.Location()).Format(time.RFC3339))
	}
	return out
}

// TestDaylightSaving: the nights the clocks go forward and back, in
// Berlin (02:00 → 03:00 on 2026-03-29, 03:00 → 02:00 on 2026-10-25) and New
// York (02:00 → 03:00 on 2026-03-08, 02:00 → 01:00 on 2026-11-01). A time
// the clocks skip fires once, as late as they moved; a time they repeat
// fires once, the first time.
func TestDaylightSaving(t *testing.T) {
	for _, tc := range []struct {
		name, spec, tz, from string
		want                 []string
	}{
		{"Berlin daily in the skipped hour", "30 2 * * *", "Europe/Berlin", "2026-03-28T02:30:00+01:00",
			[]string{"2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"Berlin daily in the repeated hour", "30 2 * * *", "Europe/Berlin", "2026-10-24T02:30:00+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"Berlin hourly over the skipped hour", "0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00+01:00",
			[]string{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
		{"Berlin hourly over the repeated hour", "0 * * * *", "Europe/Berlin", "2026-10-25T00:30:00+02:00",
			[]string{"2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"}},
		{"Berlin every 20 minutes in the skipped hour", "*/20 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:20:00+02:00"}},
		{"Berlin outside the change", "15 12 * * *", "Europe/Berlin", "2026-03-28T12:15:00+01:00",
			[]string{"2026-03-29T12:15:00+02:00", "2026-03-30T12:15:00+02:00"}},
		{"New York daily in the skipped hour", "30 2 * * *", "America/New_York", "2026-03-07T02:30:00-05:00",
			[]string{"2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"New York daily in the repeated hour", "30 1 * * *", "America/New_York", "2026-10-31T01:30:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"New York every 30 minutes over the repeated hour", "*/30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00"}},
		{"UTC has no changes", "30 2 * * *", "", "2026-03-28T02:30:00Z",
			[]string{"2026-03-29T02:30:00Z", "2026-03-30T02:30:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, fires(t, tc.spec, tc.tz, tc.from, len(tc.want)))
		})
	}
}

// TestEveryFireOnceOverAYear: a schedule every 10 minutes in Berlin, walked
// over a year from fire time to fire time, fires at strictly increasing
// instants, never twice at one wall-clock time, and 144 times a day (each
// wall-clock time once, the repeated 02:00 to 02:50 of the long day
// included) except on the short day: 138, its 02:00 to 02:50 skipped, the
// first shifted to 03:00, which fires anyway.
func TestEveryFireOnceOverAYear(t *testing.T) {
	s, err := Parse("*/10 * * * *", false, "Europe/Berlin")
	require.NoError(t, err)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, s.Location())
	end := at.AddDate(1, 0, 0)
	perDay := map[string]int{}
	seen := map[string]bool{}
	prev := at
	for n := s.Next(at.Add(-time.Second)); n.Before(end); n = s.Next(n) {
		require.True(t, n.After(prev) || n.Equal(at), "%s after %s", n, prev)
		wall := n.In(s.Location()).Format("2006-01-02 15:04")
		require.False(t, seen[wall], "%s fired twice", wall)
		seen[wall] = true
		perDay[wall[:10]]++
		prev = n
	}
	require.Len(t, perDay, 365)
	for day, n := range perDay {
		if day == "2026-03-29" {
			require.Equal(t, 138, n, day)
		} else {
			require.Equal(t, 144, n, day)
		}
	}
}

func TestPlan(t *testing.T) {
	s, err := Parse("0 * * * *", false, "")
	require.NoError(t, err)
	due := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	grace := time.Minute

	// Not yet due: nothing changes.
	p := s.Plan(due, due.Add(-time.Second), grace, MisfireRunOnce)
	require.Equal(t, Plan{Next: due}, p)

	// Due, within the grace: fire it; the next is computed from it.
	p = s.Plan(due, due.Add(30*time.Second), grace, MisfireSkip)
	require.Equal(t, Plan{Run: true, Fire: due, Next: due.Add(time.Hour)}, p)

	// Down for three and a half hours: skip runs none and goes on after
	// now; run-once runs the latest missed time, 13:00, once.
	now := due.Add(3*time.Hour + 30*time.Minute)
	next := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	require.Equal(t, Plan{Next: next, Misfire: true}, s.Plan(due, now, grace, MisfireSkip))
	require.Equal(t, Plan{Run: true, Fire: time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC), Next: next, Misfire: true},
		s.Plan(due, now, grace, MisfireRunOnce))

	// Just past the grace, nothing later missed: run-once runs the due time.
	p = s.Plan(due, due.Add(2*time.Minute), grace, MisfireRunOnce)
	require.Equal(t, Plan{Run: true, Fire: due, Next: due.Add(time.Hour), Misfire: true}, p)

	// A schedule every second, down for three days: the latest missed
	// second, found without walking every one.
	every, err := Parse("* * * * * *", true, "")
	require.NoError(t, err)
	now = due.Add(72*time.Hour + 500*time.Millisecond)
	p = every.Plan(due, now, grace, MisfireRunOnce)
	require.Equal(t, due.Add(72*time.Hour), p.Fire)
	require.Equal(t, due.Add(72*time.Hour+time.Second), p.Next)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		seconds bool
		tz, msg string
	}{
		{"61 * * * *", false, "", `cron spec "61 * * * *"`},
		{"* * * * * *", false, "", `cron spec "* * * * * *"`},
		{"* * * * *", true, "", `cron spec "* * * * *"`},
		{"0 0 30 2 *", false, "", "never fires"},
		{"0 0 * * *", false, "Mars/Olympus", `time zone "Mars/Olympus"`},
		{"CRON_TZ=UTC 0 0 * * *", false, "", "give the time zone on its own"},
	} {
		_, err := Parse(tc.spec, tc.seconds, tc.tz)
		require.ErrorContains(t, err, tc.msg, tc.spec)
	}
	s, err := Parse("@daily", false, "America/New_York")
	require.NoError(t, err)
	require.Equal(t, "@daily", s.String())
	_, err = ParseMisfire("sometimes")
	require.ErrorContains(t, err, `misfire policy "sometimes": want skip or run-once`)
	m, err := ParseMisfire("")
	require.NoError(t, err)
	require.Equal(t, MisfireSkip, m)
}
