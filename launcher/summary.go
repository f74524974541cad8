package launcher

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// Summary describes one execution and its steps for a person: parameters,
// status, times, and each step's counts.
func (l *Launcher) Summary(ctx context.Context, executionID int64) (string, error) {
	e, err := l.Repository().JobExecution(ctx, executionID)
	if err != nil {
		return "", err
	}
	steps, err := l.Repository().StepExecutions(ctx, executionID)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "job %s, execution %d (instance %d): %s\n", e.JobName, e.ID, e.InstanceID, l.describeStatus(e))
	if len(e.Parameters) > 0 {
		fmt.Fprintf(&b, "  parameters: %s\n", strings.Join(e.Parameters.Format(), " "))
	}
	if of, ok := e.Parameters.Int(batch.ReplayOfParam); ok {
		fmt.Fprintf(&b, "  replays the rejects of execution %d\n", of)
	}
	if e.ExitStatus.Description != "" {
		fmt.Fprintf(&b, "  exit: %s\n", e.ExitStatus)
	}
	fmt.Fprintf(&b, "  started %s, %s\n", formatTime(e.StartTime), durationText(e))
	steps, indent, earlier := l.partitionLayout(ctx, e, steps)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if len(steps) > 0 {
		fmt.Fprintln(tw, "  STEP\tSTATUS\tREAD\tWRITTEN\tFILTERED\tSKIPPED\tCOMMITS\tROLLBACKS")
	}
	for _, s := range steps {
		fmt.Fprintf(tw, "  %s%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", indent[s.ID], s.StepName, s.Status, s.ReadCount, s.WriteCount,
			s.FilterCount, s.SkipCount(), s.CommitCount, s.RollbackCount)
	}
	_ = tw.Flush()
	for _, line := range earlier {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	for _, s := range steps {
		if !s.Changes.IsZero() && indent[s.ID] == "" {
			// A partition's changes are in its step's.
			fmt.Fprintf(&b, "  step %s changed: %s\n", s.StepName, s.Changes)
		}
		if s.SkipCount() > 0 {
			fmt.Fprintf(&b, "  step %s skipped: %d in read, %d in process, %d in write\n", s.StepName,
				s.ReadSkipCount, s.ProcessSkipCount, s.WriteSkipCount)
		}
	}
	for _, s := range steps {
		if at, ok := s.ResumedAt(); ok {
			fmt.Fprintf(&b, "  step %s resumed at item %d\n", s.StepName, at)
		}
		// The failing step's error is the execution's exit description,
		// shown once above.
		if s.Status == batch.StatusFailed && s.ExitStatus.Description != "" && s.ExitStatus.Description != e.ExitStatus.Description {
			fmt.Fprintf(&b, "  step %s failed: %s\n", s.StepName, s.ExitStatus.Description)
		}
	}
	return b.String(), nil
}

func (l *Launcher) describeStatus(e *batch.JobExecution) string {
	s := string(e.Status)
	if e.Status.Running() {
		age := time.Since(e.Heartbeat).Round(time.Second)
		if age > leaseOf(e) {
			s += fmt.Sprintf(" (no heartbeat for %s: presumed crashed; restart it)", age)
		}
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func durationText(e *batch.JobExecution) string {
	switch {
	case e.StartTime.IsZero():
		return "not started"
	case e.EndTime.IsZero():
		return "running for " + time.Since(e.StartTime).Round(time.Second).String()
	}
	return "took " + e.EndTime.Sub(e.StartTime).Round(time.Millisecond).String()
}

// writeExecutions prints a table of executions.
func (l *Launcher) writeExecutions(w io.Writer, es []*batch.JobExecution) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJOB\tSTATUS\tSTARTED\tDURATION\tPARAMETERS")
	for _, e := range es {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.JobName, l.describeStatus(e), formatTime(e.StartTime),
			durationText(e), strings.Join(e.Parameters.Format(), " "))
	}
	_ = tw.Flush()
}

// partitionLayout orders the steps of an execution for display: each
// partitioned step followed by its partitions in the partitioner's order,
// indented. It also returns, for each partitioned step, a line naming the
// partitions that completed in an earlier execution, and those that have
// not run yet.
func (l *Launcher) partitionLayout(ctx context.Context, e *batch.JobExecution, steps []*batch.StepExecution) (
	[]*batch.StepExecution, map[int64]string, []string) {
	byName := map[string]*batch.StepExecution{}
	for _, s := range steps {
		byName[s.StepName] = s
	}
	var (
		out    []*batch.StepExecution
		indent = map[int64]string{}
		lines  []string
		placed = map[int64]bool{}
		before map[string]bool // steps completed in an earlier execution of the instance
	)
	completedBefore := func(name string) bool {
		if before == nil {
			before = map[string]bool{}
			es, err := l.Repository().JobExecutions(ctx, batch.ExecutionQuery{InstanceID: e.InstanceID})
			if err != nil {
				return false
			}
			for _, pe := range es {
				if pe.ID >= e.ID {
					continue
				}
				ses, err := l.Repository().StepExecutions(ctx, pe.ID)
				if err != nil {
					return false
				}
				for _, se := range ses {
					if se.Status == batch.StatusCompleted {
						before[se.StepName] = true
					}
				}
			}
		}
		return before[name]
	}
	for _, s := range steps {
		if placed[s.ID] {
			continue
		}
		out, placed[s.ID] = append(out, s), true
		parts, ok := s.Partitions()
		if !ok {
			continue
		}
		var earlier, waiting []string
		for _, p := range parts {
			name := s.StepName + ":" + p.Name
			if c, ok := byName[name]; ok {
				if !placed[c.ID] {
					out, placed[c.ID], indent[c.ID] = append(out, c), true, "  "
				}
				continue
			}
			if completedBefore(name) {
				earlier = append(earlier, p.Name)
			} else {
				waiting = append(waiting, p.Name)
			}
		}
		if len(earlier) > 0 {
			lines = append(lines, fmt.Sprintf("step %s: %d of %d partitions completed in an earlier execution: %s",
				s.StepName, len(earlier), len(parts), listNames(earlier)))
		}
		if len(waiting) > 0 {
			verb := "not run"
			if s.Status.Running() {
				verb = "waiting"
			}
			lines = append(lines, fmt.Sprintf("step %s: %d of %d partitions %s: %s",
				s.StepName, len(waiting), len(parts), verb, listNames(waiting)))
		}
	}
	return out, indent, lines
}

// listNames lists names, the first dozen of them.
func listNames(names []string) string {
	const most = 12
	if len(names) > most {
		return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
	}
	return strings.Join(names, ", ")
}
