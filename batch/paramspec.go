package batch

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidParameter: a launch's parameters do not match what the job
// declares (ParamSpecs): one is missing, unknown, or of the wrong type.
var ErrInvalidParameter = errors.New("batch: invalid parameter")

// RunIDParam is the parameter an incrementer sets to give a job a new
// instance at each launch (the command line's run -next). A job that
// declares its parameters takes it without declaring it.
const RunIDParam = "run.id"

// FireTimeParam is the parameter a scheduler sets to the time a schedule
// fired for (a time, identifying): each fire time is an instance of its own,
// and the job reads the time it runs for from it. A job that declares its
// parameters takes it without declaring it.
const FireTimeParam = "schedule.fire"

// ParamSpec declares one parameter a job takes.
type ParamSpec struct {
	// Name is the parameter's name. Required.
	Name string
	// Type is the parameter's type; a value given as a plain string (as
	// name=value on the command line) is parsed as this type. Default
	// ParamString.
	Type ParamType
	// Required makes a launch without the parameter fail. Default false.
	Required bool
	// Default is the value used when the parameter is not given, written
	// as on the command line ("500", "2026-11-30"); "" means none.
	Default string
	// NonIdentifying makes the parameter no part of the instance's
	// identity, however it is given. Default false: identifying, as
	// written.
	NonIdentifying bool
	// Description says what the parameter is for, in a few words; the
	// command line's jobs command shows it.
	Description string
}

// String describes the spec in one line: name, type, and whether it is
// required, its default, whether it identifies the instance.
func (s ParamSpec) String() string {
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteString(" (")
	b.WriteString(string(s.typ()))
	switch {
	case s.Required:
		b.WriteString(", required")
	case s.Default != "":
		fmt.Fprintf(&b, ", default %s", s.Default)
	default:
		b.WriteString(", optional")
	}
	if s.NonIdentifying {
		b.WriteString(", not identifying")
	}
	b.WriteString(")")
	if s.Description != "" {
		b.WriteString(": ")
		b.WriteString(s.Description)
	}
	return b.String()
}

func (s ParamSpec) typ() ParamType {
	if s.Type == "" {
		return ParamString
	}
	return s.Type
}

// ParamSpecs declares the parameters of a job. A job that declares them
// takes no others (but RunIDParam).
type ParamSpecs []ParamSpec

// Validate checks the declarations: valid, distinct names, known types,
// defaults of their type, and no default on a required parameter.
func (ss ParamSpecs) Validate() error {
	seen := map[string]bool{}
	for _, s := range ss {
		if err := validName(s.Name); err != nil {
			return fmt.Errorf("%w: parameter spec: %w", ErrInvalidConfig, err)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: parameter %s declared twice", ErrInvalidConfig, s.Name)
		}
		seen[s.Name] = true
		switch s.typ() {
		case ParamString, ParamInt, ParamFloat, ParamBool, ParamTime, ParamDate:
		default:
			return fmt.Errorf("%w: parameter %s: unknown type %q", ErrInvalidConfig, s.Name, s.Type)
		}
		if s.Default != "" {
			if s.Required {
				return fmt.Errorf("%w: parameter %s is required and has a default", ErrInvalidConfig, s.Name)
			}
			if _, err := parseValue(s.typ(), s.Default); err != nil {
				return fmt.Errorf("%w: parameter %s: default: %w", ErrInvalidConfig, s.Name, err)
			}
		}
	}
	return nil
}

// Apply checks p against the declarations and returns the parameters to
// launch with: the given ones, strings parsed as their declared types,
// identifying as declared, and the defaults of those not given. A missing
// required parameter, an unknown one or a value of the wrong type is an
// error wrapping ErrInvalidParameter that names the parameter. With no
// declarations, p is returned as it is.
func (ss ParamSpecs) Apply(p JobParameters) (JobParameters, error) {
	if len(ss) == 0 {
		return p, nil
	}
	out := JobParameters{}
	declared := map[string]ParamSpec{}
	for _, s := range ss {
		declared[s.Name] = s
	}
	for _, name := range p.Names() {
		v := p[name]
		s, ok := declared[name]
		switch {
		case !ok && (name == RunIDParam && v.Type == ParamInt || name == FireTimeParam && v.Type == ParamTime):
			out[name] = v
			continue
		case !ok:
			return nil, fmt.Errorf("%w %s: unknown (the job takes %s)", ErrInvalidParameter, name, ss.names())
		}
		if v.Type != s.typ() {
			raw, isString := v.Value.(string)
			if !isString || v.Type != ParamString {
				return nil, fmt.Errorf("%w %s: want %s, got %s %s", ErrInvalidParameter, name, s.typ(), v.Type, v.String())
			}
			val, err := parseValue(s.typ(), raw)
			if err != nil {
				return nil, fmt.Errorf("%w %s: %w", ErrInvalidParameter, name, err)
			}
			v = JobParameter{Type: s.typ(), Value: val}
		}
		v.Identifying = !s.NonIdentifying
		out[name] = v
	}
	for _, s := range ss {
		if _, ok := out[s.Name]; ok {
			continue
		}
		switch {
		case s.Required:
			return nil, fmt.Errorf("%w %s: missing; it is required (%s)", ErrInvalidParameter, s.Name, s.typ())
		case s.Default != "":
			val, err := parseValue(s.typ(), s.Default)
			if err != nil {
				return nil, fmt.Errorf("%w %s: default: %w", ErrInvalidParameter, s.Name, err)
			}
			out[s.Name] = JobParameter{Type: s.typ(), Value: val, Identifying: !s.NonIdentifying}
		}
	}
	return out, nil
}

func (ss ParamSpecs) names() string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}
