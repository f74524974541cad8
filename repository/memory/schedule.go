package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

var _ repository.ScheduleStore = (*Repository)(nil)

// SyncSchedule implements repository.ScheduleStore.
func (r *Repository) SyncSchedule(_ context.Context, s repository.Schedule, first func(now time.Time) time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().UTC()
	if r.schedules == nil {
		r.schedules = map[string]repository.Schedule{}
	}
	stored, ok := r.schedules[s.Name]
	s.Parameters = maps.Clone(s.Parameters)
	s.UpdatedAt = now
	switch {
	case !ok:
		s.NextFire, s.LastFire, s.LastExecutionID = first(now).UTC(), time.Time{}, 0
	default:
		s.Paused, s.NextFire, s.LastFire, s.LastExecutionID = stored.Paused, stored.NextFire, stored.LastFire, stored.LastExecutionID
		if !stored.SameTimes(s) {
			s.NextFire = first(now).UTC()
		}
	}
	r.schedules[s.Name] = s
	return nil
}

// Schedules implements repository.ScheduleStore.
func (r *Repository) Schedules(context.Context) ([]repository.Schedule, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []repository.Schedule{}
	for _, name := range slices.Sorted(maps.Keys(r.schedules)) {
		s := r.schedules[name]
		s.Parameters = maps.Clone(s.Parameters)
		out = append(out, s)
	}
	return out, nil
}

// SetSchedulePaused implements repository.ScheduleStore.
func (r *Repository) SetSchedulePaused(_ context.Context, name string, paused bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.schedules[name]
	if !ok {
		return fmt.Errorf("schedule %q: %w", name, batch.ErrNotFound)
	}
	s.Paused, s.UpdatedAt = paused, time.Now().UTC()
	r.schedules[name] = s
	return nil
}

// FireSchedule implements repository.ScheduleStore. The memory repository
// has no transactions: launch runs after the due time moved, and a
// process that dies between the two loses the fire (it loses everything
// else too).
func (r *Repository) FireSchedule(ctx context.Context, name string, due, next time.Time,
	launch func(ctx context.Context) (int64, error)) (bool, error) {
	r.mu.Lock()
	s, ok := r.schedules[name]
	if !ok || !s.NextFire.Equal(due) {
		r.mu.Unlock()
		return false, nil
	}
	s.NextFire, s.UpdatedAt = next.UTC(), time.Now().UTC()
	r.schedules[name] = s
	r.mu.Unlock()
	id, err := launch(ctx)
	if err != nil || id == 0 {
		return true, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s = r.schedules[name]
	s.LastFire, s.LastExecutionID = due.UTC(), id
	r.schedules[name] = s
	return true, nil
}

// ScheduleNow implements repository.ScheduleStore.
func (r *Repository) ScheduleNow(context.Context) (time.Time, error) { return time.Now().UTC(), nil }
