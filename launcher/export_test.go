package launcher

import "time"

// SetClock sets the clock of l's machine, as a test's skewed machine has.
func SetClock(l *Launcher, clock func() time.Time) { l.engine.clock = clock }
