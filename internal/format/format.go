// Package format writes the figures that progress reports show — rates,
// amounts, durations — the same way on the command line and in the
// dashboard.
package format

import (
	"fmt"
	"time"
)

// Roughly rounds d to the second, or under a second to the millisecond.
func Roughly(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// Rate writes a rate with three significant digits at most.
func Rate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// Amount writes n units, in MB for bytes.
func Amount(n int64, unit string) string {
	if unit == "bytes" && n >= 1<<20 {
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d %s", n, unit)
}
