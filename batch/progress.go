package batch

import "time"

// Progress says how far a reader is through its input: Done of Total, in
// Unit ("items", "bytes"). Total is 0 when the reader does not know it.
type Progress struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total,omitempty"`
	Unit  string `json:"unit"`
}

// ProgressReader is an ItemReader that knows how far it is through its
// input. A chunk step stores its reader's Progress with every checkpoint
// (under ProgressKey in the step's context), where progress reports — the
// command line's status, from any process — find it. The CSV reader counts
// bytes of its file (or of its range), FromSlice items.
type ProgressReader interface {
	Progress() Progress
}

// ProgressKey is the key of the reader's Progress in a step execution's
// context.
const ProgressKey = "batch.progress"

// RateKey is the key of a running step's Rate in its context, kept by the
// launcher at every checkpoint.
const RateKey = "batch.rate"

// Rate is how fast a step goes, averaged over its recent chunks (an
// exponentially weighted moving average with a time constant of 30
// seconds): items read per second, and units of its reader's Progress per
// second (0 without one).
type Rate struct {
	Items float64   `json:"items"`
	Units float64   `json:"units,omitempty"`
	At    time.Time `json:"at"` // when it was measured: the checkpoint's time
}

// Estimate is how far a running step is and when it should end, from what
// its last checkpoint stored (see StepExecution.Estimate).
type Estimate struct {
	// Rate is the step's rate, when HasRate (after its first checkpoint).
	Rate    Rate
	HasRate bool
	// Progress is its reader's, when HasProgress.
	Progress    Progress
	HasProgress bool
	// Fraction is how far through its input the step is, from 0 to 1: by
	// its reader's Progress when that has a total, else by the item count
	// of the step's last completed run (Last); -1 when neither is known.
	Fraction float64
	// ETA is the time left at the current rate, as of the last checkpoint
	// (the time since is not taken off: a step that waits has not come
	// closer to its end); 0 when unknown.
	ETA time.Duration
	// Last is the item count of the step's last completed run when the
	// estimate comes from it; 0 otherwise.
	Last int64
}

// Estimate estimates how far s is and when it ends, from its checkpoint's
// Progress and Rate (a Rate measured before s started, kept in the context
// of the run s resumes, does not count). Without a total from its reader,
// it goes by last, the same step's last completed run, when there is one
// (nil otherwise): its item count at the current rate.
func (s *StepExecution) Estimate(last *StepExecution) Estimate {
	est := Estimate{Fraction: -1}
	est.HasRate, _ = s.Context.Get(RateKey, &est.Rate)
	if est.HasRate && !s.StartTime.IsZero() && est.Rate.At.Before(s.StartTime) {
		// Carried over from the run this one resumes: not this run's.
		est.HasRate, est.Rate = false, Rate{}
	}
	est.HasProgress, _ = s.Context.Get(ProgressKey, &est.Progress)
	p := est.Progress
	switch {
	case est.HasProgress && p.Total > 0:
		est.Fraction = min(float64(p.Done)/float64(p.Total), 1)
		if est.HasRate && est.Rate.Units > 0 && p.Done < p.Total {
			est.ETA = time.Duration(float64(p.Total-p.Done) / est.Rate.Units * float64(time.Second))
		}
	case last != nil && last.ReadCount > 0:
		est.Fraction, est.Last = min(float64(s.ReadCount)/float64(last.ReadCount), 1), last.ReadCount
		if est.HasRate && est.Rate.Items > 0 && last.ReadCount > s.ReadCount {
			est.ETA = time.Duration(float64(last.ReadCount-s.ReadCount) / est.Rate.Items * float64(time.Second))
		}
	}
	est.ETA = max(est.ETA, 0)
	return est
}
