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
	if e.ExitStatus.Description != "" {
		fmt.Fprintf(&b, "  exit: %s\n", e.ExitStatus)
	}
	fmt.Fprintf(&b, "  started %s, %s\n", formatTime(e.StartTime), durationText(e))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if len(steps) > 0 {
		fmt.Fprintln(tw, "  STEP\tSTATUS\tREAD\tWRITTEN\tFILTERED\tSKIPPED\tCOMMITS\tROLLBACKS")
	}
	for _, s := range steps {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.StepName, s.Status, s.ReadCount, s.WriteCount,
			s.FilterCount, s.SkipCount(), s.CommitCount, s.RollbackCount)
	}
	_ = tw.Flush()
	for _, s := range steps {
		if !s.Changes.IsZero() {
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
