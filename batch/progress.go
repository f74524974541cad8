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
