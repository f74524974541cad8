package repository

import (
	"context"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// Schedule is a schedule as a ScheduleStore keeps it: its definition, and
// its state — paused or not, its next due time, its last fire.
type Schedule struct {
	Name     string
	JobName  string
	Spec     string // a cron spec
	Seconds  bool   // the spec has a leading seconds field
	TimeZone string // IANA; "" for UTC
	// Parameters are the identifying parameters of every fire, besides the
	// fire time.
	Parameters batch.JobParameters
	Misfire    string // "skip" or "run-once"
	Overlap    string // "skip" or "allow"

	Paused          bool
	NextFire        time.Time // the next due time, by the repository's clock
	LastFire        time.Time // zero before the first fire
	LastExecutionID int64     // the execution of the last fire, 0 for none
	UpdatedAt       time.Time
}

// SameTimes reports whether s and o fire at the same times: the same spec,
// seconds field and time zone.
func (s Schedule) SameTimes(o Schedule) bool {
	return s.Spec == o.Spec && s.Seconds == o.Seconds && s.TimeZone == o.TimeZone
}

// ScheduleStore is a [JobRepository] that keeps schedules, for schedulers
// that fire each due time once however many replicas run: the one whose
// compare-and-set moves a schedule's due time on fires it. The SQL
// repositories and the memory repository are ScheduleStores.
type ScheduleStore interface {
	// SyncSchedule stores s's definition. A schedule not stored yet is
	// stored with s.Paused and the due time first(now), now by the
	// repository's clock. A stored one keeps its paused flag, due time and
	// last fire, unless it fires at other times now (SameTimes): then its
	// due time is first(now).
	SyncSchedule(ctx context.Context, s Schedule, first func(now time.Time) time.Time) error
	// Schedules returns the stored schedules, by name.
	Schedules(ctx context.Context) ([]Schedule, error)
	// SetSchedulePaused pauses or resumes schedule name; a resumed one
	// keeps its due time (a due time passed meanwhile is a misfire). It
	// fails with batch.ErrNotFound for a schedule not stored.
	SetSchedulePaused(ctx context.Context, name string, paused bool) error
	// FireSchedule moves schedule name's due time from due to next, if it
	// is still due (a compare-and-set: of all the replicas that try, one
	// succeeds), and then calls launch, which creates the fire's job
	// execution: in the same transaction where the repository has them
	// (the SQL repositories), so that a fire is never recorded without its
	// execution. launch's error undoes only what launch wrote: the due
	// time moves on all the same, and the error is returned. fired reports
	// whether this call moved the due time. The execution id launch
	// returns is recorded as the schedule's last fire, at due; a launch
	// that returns 0 launched nothing (the fire was skipped), and the last
	// fire stays as it was.
	FireSchedule(ctx context.Context, name string, due, next time.Time,
		launch func(ctx context.Context) (executionID int64, err error)) (fired bool, err error)
	// ScheduleNow returns the repository's clock: schedules are judged by
	// it, not by each replica's.
	ScheduleNow(ctx context.Context) (time.Time, error)
}
