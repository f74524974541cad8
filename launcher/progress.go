package launcher

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/format"
	"github.com/chunkwise/chunkwise/repository"
)

// rateWindow is the time constant of the rates' moving average.
const rateWindow = 30 * time.Second

// rater keeps a step's rate from checkpoint to checkpoint.
type rater struct {
	at           time.Time
	items, units int64
	rate         batch.Rate
	measured     bool
}

func newRater(se *batch.StepExecution, now time.Time) *rater {
	r := &rater{at: now, items: se.ReadCount}
	var p batch.Progress
	if ok, _ := se.Context.Get(batch.ProgressKey, &p); ok {
		r.units = p.Done
	}
	return r
}

// next returns the rate with the checkpoint w, taken at now, folded in,
// and stores it in w's context; it becomes the step's rate once w commits.
func (r rater) next(w *batch.StepExecution, now time.Time) (rater, error) {
	dt := now.Sub(r.at).Seconds()
	if dt <= 0 {
		return r, nil
	}
	var p batch.Progress
	hasProgress, _ := w.Context.Get(batch.ProgressKey, &p)
	items := float64(w.ReadCount-r.items) / dt
	units := 0.0
	if hasProgress {
		units = float64(p.Done-r.units) / dt
	}
	if !r.measured {
		r.rate.Items, r.rate.Units, r.measured = items, units, true
	} else {
		a := 1 - math.Exp(-dt/rateWindow.Seconds())
		r.rate.Items += a * (items - r.rate.Items)
		r.rate.Units += a * (units - r.rate.Units)
	}
	r.rate.At = now.UTC()
	r.at, r.items, r.units = now, w.ReadCount, p.Done
	return r, w.Context.Put(batch.RateKey, r.rate)
}

// monitor returns the repository a progress display polls: the one for
// monitoring its repository offers (SQLite's, on a connection of its own),
// else the repository.
func (l *Launcher) monitor() repository.JobRepository {
	if m, ok := l.Repository().(interface {
		Monitor() repository.JobRepository
	}); ok {
		return m.Monitor()
	}
	return l.Repository()
}

// progressLine describes how a running step goes, from what its last
// checkpoint stored: its rate, how far it is and when it should end, or
// that it has not committed for longer than stalled. Without a total from
// its reader, the ETA comes from prev, the step's last completed run, when
// there is one: its item count at the current rate.
func progressLine(s, prev *batch.StepExecution, now time.Time, stalled time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d read", s.StepName, s.ReadCount)
	est := s.Estimate(prev)
	if est.HasRate {
		fmt.Fprintf(&b, ", %s items/s", format.Rate(est.Rate.Items))
	}
	if p := est.Progress; est.HasProgress && p.Total > 0 {
		fmt.Fprintf(&b, ", %.0f%% of %s", 100*float64(p.Done)/float64(p.Total), format.Amount(p.Total, p.Unit))
		if est.ETA > 0 {
			fmt.Fprintf(&b, ", ETA %s", format.Roughly(est.ETA))
		}
	} else if est.ETA > 0 {
		fmt.Fprintf(&b, ", ETA %s (the last run read %d)", format.Roughly(est.ETA), est.Last)
	}
	last := s.UpdatedAt
	if !last.IsZero() && stalled > 0 && now.Sub(last) > stalled {
		fmt.Fprintf(&b, ", STALLED: no commit for %s", format.Roughly(now.Sub(last)))
	}
	return b.String()
}
