package batch

import (
	"context"
	"path"
	"slices"
	"strings"
)

// Transition is an edge of a job's flow: after the step (or decider) From
// ended with an exit code that On matches, the job goes on to To, or ends.
// A job with transitions runs as a flow from its first step; without them
// its steps run in order.
//
// Exactly one of these says what comes next: To alone (the next step or
// decider), End (the job ends COMPLETED), Fail (it ends FAILED), or Stop
// with To (it ends STOPPED, and a restart begins at To).
//
// A step that failed ends with the exit code FAILED, which transitions
// match like any other — "*" too: a transition that matches it takes the
// flow on (to a clean-up step, say). A step whose exit code no transition
// matches ends the job with its own status: FAILED fails it, COMPLETED
// completes it. A step stopped on request, or interrupted, stops the job,
// and a restart goes on with that step.
type Transition struct {
	// From is the name of a step or decider. Required.
	From string
	// On is a pattern on the exit code: "*" matches any run of characters
	// and "?" one, as in "COMPLETED*". Default "*". When several
	// transitions of From match, one whose On has no wildcard wins, then
	// the first declared.
	On string
	// To is the step or decider that runs next; with Stop, the one a
	// restart begins at.
	To   string
	End  bool
	Fail bool
	Stop bool
}

// Decider is a node of a flow that chooses the way on without doing any
// work: Decide returns the exit code that the transitions From its Name
// match. It gets the job execution and the execution of the step that ran
// last (nil when the decider comes first). On a restart the decider is
// asked again, with the stored executions, so it must decide from them.
type Decider struct {
	Name   string
	Decide func(ctx context.Context, e *JobExecution, last *StepExecution) (string, error)
}

// Split is a node of a flow that runs branches at the same time and goes
// on, by the transitions From its Name, once every branch has ended.
//
// Each of Branches names the step, decider or split a branch begins with;
// the branch follows the job's transitions from there and ends where they
// do not go on: at a node whose exit code no transition matches, or at an
// End, Fail or Stop transition. A branch runs in its own goroutine, its
// steps one after another; a failing branch does not stop the others. The
// steps of a branch belong to it alone: no transition leads into a branch
// from outside it or out of it.
//
// The split then ends with the exit code COMPLETED when every branch
// completed, FAILED when one failed (by a step whose exit code no
// transition matched, or a Fail transition), and otherwise STOPPED: one
// stopped (on request, or by a Stop transition), and the job stops with
// it. A restart runs the split again: the steps that completed are passed
// with their stored exit codes, so each branch goes on where it ended and
// takes the same ways.
type Split struct {
	Name     string
	Branches []string
}

// flow is a job's checked flow.
type flow struct {
	start    string
	from     map[string][]Transition
	deciders map[string]Decider
	splits   map[string]Split
}

// newFlow checks transitions, deciders and splits against the steps: every
// name known, every transition with one ending, every node reachable from
// the start and in one line of the flow only (the main one or one branch of
// one split), no cycle.
func newFlow(job string, cfg JobConfig) (*flow, error) {
	ts, ds, ss := cfg.Transitions, cfg.Deciders, cfg.Splits
	if len(ts) == 0 && len(ss) == 0 && cfg.Start == "" {
		if len(ds) > 0 {
			return nil, configError("job %s: deciders without transitions", job)
		}
		return nil, nil
	}
	f := &flow{start: cfg.Start, from: map[string][]Transition{}, deciders: map[string]Decider{}, splits: map[string]Split{}}
	if f.start == "" {
		f.start = cfg.Steps[0].Name()
	}
	nodes := map[string]bool{}
	for _, s := range cfg.Steps {
		nodes[s.Name()] = true
	}
	for _, d := range ds {
		switch {
		case d.Name == "" || d.Decide == nil:
			return nil, configError("job %s: a decider needs a Name and a Decide func", job)
		case nodes[d.Name]:
			return nil, configError("job %s: two steps, deciders or splits named %q", job, d.Name)
		}
		nodes[d.Name] = true
		f.deciders[d.Name] = d
	}
	for _, s := range ss {
		switch {
		case s.Name == "":
			return nil, configError("job %s: a split needs a Name", job)
		case nodes[s.Name]:
			return nil, configError("job %s: two steps, deciders or splits named %q", job, s.Name)
		case len(s.Branches) < 2:
			return nil, configError("job %s: split %s: want two branches or more", job, s.Name)
		}
		nodes[s.Name] = true
		f.splits[s.Name] = Split{Name: s.Name, Branches: slices.Clone(s.Branches)}
	}
	for _, s := range ss {
		for _, b := range s.Branches {
			if !nodes[b] {
				return nil, configError("job %s: split %s: no step, decider or split %q", job, s.Name, b)
			}
		}
	}
	if !nodes[f.start] {
		return nil, configError("job %s: the flow starts with %q, which is no step, decider or split", job, f.start)
	}
	for i, t := range ts {
		if t.On == "" {
			t.On = "*"
		}
		if _, err := path.Match(t.On, ""); err != nil {
			return nil, configError("job %s: transition %d: pattern %q: %v", job, i+1, t.On, err)
		}
		endings := 0
		for _, b := range []bool{t.End, t.Fail, t.Stop, t.To != "" && !t.Stop} {
			if b {
				endings++
			}
		}
		switch {
		case !nodes[t.From]:
			return nil, configError("job %s: transition %d: no step, decider or split %q", job, i+1, t.From)
		case endings != 1:
			return nil, configError("job %s: transition %d from %s on %q: want exactly one of To, End, Fail and Stop", job, i+1, t.From, t.On)
		case t.To != "" && !nodes[t.To]:
			return nil, configError("job %s: transition %d: no step, decider or split %q", job, i+1, t.To)
		case t.Stop && t.To == "":
			return nil, configError("job %s: transition %d from %s: Stop needs the To a restart begins at", job, i+1, t.From)
		}
		f.from[t.From] = append(f.from[t.From], t)
	}
	// Every node in exactly one line, reachable from the start, and no
	// cycle.
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	line := map[string]string{} // node → "" (the main line) or "branch b of split s"
	var visit func(n, l string) error
	visit = func(n, l string) error {
		if cur, ok := line[n]; ok && cur != l {
			where := func(l string) string {
				if l == "" {
					return "the main flow"
				}
				return l
			}
			return configError("job %s: %s is both in %s and in %s", job, n, where(cur), where(l))
		}
		line[n] = l
		switch state[n] {
		case visiting:
			return configError("job %s: the flow has a cycle through %s", job, n)
		case done:
			return nil
		}
		state[n] = visiting
		for _, t := range f.from[n] {
			if t.To != "" {
				if err := visit(t.To, l); err != nil {
					return err
				}
			}
		}
		for _, b := range f.splits[n].Branches {
			if err := visit(b, "branch "+b+" of split "+n); err != nil {
				return err
			}
		}
		state[n] = done
		return nil
	}
	if err := visit(f.start, ""); err != nil {
		return nil, err
	}
	var unreachable []string
	for n := range nodes {
		if state[n] != done {
			unreachable = append(unreachable, n)
		}
	}
	if len(unreachable) > 0 {
		slices.Sort(unreachable)
		return nil, configError("job %s: the flow never reaches %s", job, strings.Join(unreachable, ", "))
	}
	return f, nil
}

// next returns the transition from node for the exit code.
func (f *flow) next(node, code string) (Transition, bool) {
	var found *Transition
	for _, t := range f.from[node] {
		on := t.On
		if on == "" {
			on = "*"
		}
		if ok, _ := path.Match(on, code); !ok {
			continue
		}
		if !strings.ContainsAny(on, "*?") {
			return t, true
		}
		if found == nil {
			found = &t
		}
	}
	if found == nil {
		return Transition{}, false
	}
	return *found, true
}

// HasFlow reports whether the job runs as a flow (it has transitions).
func (j *Job) HasFlow() bool { return j.flow != nil }

// Next returns the transition the job's flow takes from the step or decider
// node after it ended with the exit code, and false when none matches: the
// job then ends with the status of node.
func (j *Job) Next(node, code string) (Transition, bool) {
	if j.flow == nil {
		return Transition{}, false
	}
	return j.flow.next(node, code)
}

// Decider returns the flow's decider of that name.
func (j *Job) Decider(name string) (Decider, bool) {
	if j.flow == nil {
		return Decider{}, false
	}
	d, ok := j.flow.deciders[name]
	return d, ok
}

// Split returns the flow's split of that name.
func (j *Job) Split(name string) (Split, bool) {
	if j.flow == nil {
		return Split{}, false
	}
	s, ok := j.flow.splits[name]
	return Split{Name: s.Name, Branches: slices.Clone(s.Branches)}, ok
}

// FlowStart returns the step, decider or split the job's flow begins with,
// and "" for a job without a flow.
func (j *Job) FlowStart() string {
	if j.flow == nil {
		return ""
	}
	return j.flow.start
}

// Step returns the job's step of that name.
func (j *Job) Step(name string) (Step, bool) {
	for _, s := range j.steps {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// FlowRestartKey is the key of the job's execution context under which a
// flow that ended with a Stop transition stores where a restart begins. A
// branch of a split that ended so stores it under FlowRestartKey + "/" +
// the name its branch begins with.
const FlowRestartKey = "batch.flow.restart-at"
