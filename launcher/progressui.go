package launcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/format"
	"github.com/chunkwise/chunkwise/internal/lastrun"
)

// Progress modes of the command line's run (-progress).
const (
	progressAuto = "auto" // bars on a terminal, else log lines
	progressBars = "bars"
	progressLog  = "log"
	progressOff  = "off"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// stepView is what a progress display knows of one step execution.
type stepView struct {
	name  string
	done  int64
	total int64
	line  string            // while it runs: progressLine
	ended batch.BatchStatus // "" while it runs
}

// viewSteps reads the steps of an execution from the repository: what a
// display shows, in the order the steps started.
func (l *Launcher) viewSteps(ctx context.Context, job string, execID int64, prev *lastrun.Finder) ([]stepView, error) {
	steps, err := l.monitor().StepExecutions(ctx, execID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]stepView, 0, len(steps))
	for _, s := range steps {
		v := stepView{name: s.StepName, done: s.ReadCount}
		if s.Status.Running() {
			v.line = progressLine(s, prev.Of(ctx, job, execID, s.StepName), now, 0)
		}
		var p batch.Progress
		if ok, _ := s.Context.Get(batch.ProgressKey, &p); ok && p.Total > 0 {
			v.done, v.total = p.Done, p.Total
		}
		if !s.Status.Running() {
			v.ended = s.Status
			word := strings.ToLower(string(s.Status))
			if s.Status == batch.StatusCompleted {
				word = "done"
			}
			v.line = fmt.Sprintf("%s: %s: %d read, %d written, took %s", s.StepName, word, s.ReadCount, s.WriteCount,
				format.Roughly(s.EndTime.Sub(s.StartTime)))
		}
		out = append(out, v)
	}
	return out, nil
}

// showProgress shows the progress of execution execID until the returned
// stop is called: with mode bars, a bar per step and partition on w; with
// mode log, a log line per running step every interval. stop draws the
// final state and returns when the display is done.
func (l *Launcher) showProgress(ctx context.Context, execID int64, mode string, w *switchWriter, log *slog.Logger, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var job string // for the ETA from the job's last run
	if mode != progressOff {
		if e, err := l.monitor().JobExecution(ctx, execID); err == nil {
			job = e.JobName
		}
	}
	switch mode {
	case progressBars:
		go func() {
			defer wg.Done()
			l.bars(ctx, job, execID, w, done)
		}()
	case progressLog:
		prev := lastrun.New(l.monitor())
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				steps, err := l.viewSteps(ctx, job, execID, prev)
				if err != nil {
					continue
				}
				for _, s := range steps {
					if s.ended == "" {
						log.Info("progress", "execution", execID, "step", s.line)
					}
				}
			}
		}()
	default:
		wg.Done()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// bars draws a bar per step execution with mpb, polling the repository,
// until done is closed; then it draws the steps' final states.
func (l *Launcher) bars(ctx context.Context, job string, execID int64, w *switchWriter, done <-chan struct{}) {
	p := mpb.NewWithContext(ctx, mpb.WithOutput(w.target()), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	// Log lines go above the bars while they are drawn.
	restore := w.set(p)
	defer restore()
	type shown struct {
		bar  *mpb.Bar
		line atomic.Pointer[string]
	}
	bars := map[int]*shown{}
	prev := lastrun.New(l.monitor())
	update := func(final bool) {
		steps, err := l.viewSteps(ctx, job, execID, prev)
		if err != nil {
			return
		}
		for i, s := range steps {
			b, ok := bars[i]
			if !ok {
				b = &shown{}
				name := s.name
				// Created without a total, a bar completes only when told to
				// (below), not when its count reaches the total.
				b.bar = p.AddBar(0,
					mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace})),
					mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
						if line := b.line.Load(); line != nil {
							return *line
						}
						return ""
					})))
				bars[i] = b
			}
			text := s.line[len(s.name)+2:]
			b.line.Store(&text)
			if s.total > 0 {
				b.bar.SetTotal(s.total, false)
			}
			b.bar.SetCurrent(s.done)
			if s.ended == batch.StatusCompleted && s.total == 0 {
				b.bar.SetTotal(1, false) // no progress known: full once done
				b.bar.SetCurrent(1)
			}
			switch {
			case s.ended == batch.StatusCompleted:
				b.bar.SetTotal(-1, true) // complete: drawn full
			case s.ended != "" || final:
				b.bar.Abort(false) // drawn where it stopped
			}
		}
	}
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			update(true)
			p.Wait()
			return
		case <-t.C:
			update(false)
		}
	}
}

// switchWriter is an io.Writer whose target can be changed: the log's
// output, sent through the bars while they are drawn.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *switchWriter) target() io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w
}

// set makes w the target, and returns what puts the old one back.
func (s *switchWriter) set(w io.Writer) (restore func()) {
	s.mu.Lock()
	old := s.w
	s.w = w
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.w = old
		s.mu.Unlock()
	}
}

// progressMode resolves -progress for a command writing to stderr.
func progressMode(flag string, stderr io.Writer) (string, error) {
	switch flag {
	case progressAuto:
		if isTerminal(stderr) {
			return progressBars, nil
		}
		return progressLog, nil
	case progressBars, progressLog, progressOff:
		return flag, nil
	}
	return "", fmt.Errorf("invalid -progress %q: want auto, bars, log or off", flag)
}
