package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ParamType is the type of a job parameter.
type ParamType string

// The parameter types.
const (
	ParamString ParamType = "string"
	ParamInt    ParamType = "int"
	ParamFloat  ParamType = "float"
	ParamBool   ParamType = "bool"
	ParamTime   ParamType = "time" // an instant, written in RFC 3339
	ParamDate   ParamType = "date" // a calendar day, written 2006-01-02, held as midnight UTC
)

// JobParameter is one typed parameter of a job execution. Value holds a
// string, int64, float64, bool or time.Time according to Type. Identifying
// parameters make up the identity of the [JobInstance]: launching a job with
// the same name and identifying parameters addresses the same instance.
type JobParameter struct {
	Type        ParamType
	Value       any
	Identifying bool
}

// String returns the parameter's value in the form [ParseParameter] reads.
func (p JobParameter) String() string {
	switch v := p.Value.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		if p.Type == ParamDate {
			return v.UTC().Format(time.DateOnly)
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(p.Value)
}

// StringParam returns an identifying string parameter.
func StringParam(v string) JobParameter {
	return JobParameter{Type: ParamString, Value: v, Identifying: true}
}

// IntParam returns an identifying integer parameter.
func IntParam(v int64) JobParameter { return JobParameter{Type: ParamInt, Value: v, Identifying: true} }

// FloatParam returns an identifying floating-point parameter.
func FloatParam(v float64) JobParameter {
	return JobParameter{Type: ParamFloat, Value: v, Identifying: true}
}

// BoolParam returns an identifying boolean parameter.
func BoolParam(v bool) JobParameter {
	return JobParameter{Type: ParamBool, Value: v, Identifying: true}
}

// TimeParam returns an identifying instant parameter.
func TimeParam(v time.Time) JobParameter {
	return JobParameter{Type: ParamTime, Value: v.UTC(), Identifying: true}
}

// DateParam returns an identifying date parameter for the calendar day of v.
func DateParam(v time.Time) JobParameter {
	y, m, d := v.Date()
	return JobParameter{Type: ParamDate, Value: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Identifying: true}
}

// NonIdentifying returns p marked as not identifying: it is recorded with the
// execution but does not distinguish one job instance from another.
func (p JobParameter) NonIdentifying() JobParameter {
	p.Identifying = false
	return p
}

// JobParameters are the parameters of one job execution, by name.
type JobParameters map[string]JobParameter

// String returns the string parameter name and whether it is present with
// that type.
func (p JobParameters) String(name string) (string, bool) {
	v, ok := p[name].Value.(string)
	return v, ok
}

// Int returns the integer parameter name and whether it is present with that
// type.
func (p JobParameters) Int(name string) (int64, bool) {
	v, ok := p[name].Value.(int64)
	return v, ok
}

// Float returns the floating-point parameter name and whether it is present
// with that type.
func (p JobParameters) Float(name string) (float64, bool) {
	v, ok := p[name].Value.(float64)
	return v, ok
}

// Bool returns the boolean parameter name and whether it is present with that
// type.
func (p JobParameters) Bool(name string) (bool, bool) {
	v, ok := p[name].Value.(bool)
	return v, ok
}

// Time returns the time or date parameter name and whether it is present with
// one of those types.
func (p JobParameters) Time(name string) (time.Time, bool) {
	v, ok := p[name].Value.(time.Time)
	return v, ok
}

// Validate checks that every parameter can be stored and read back exactly:
// a valid name, a known type, a value of that type, a string in valid UTF-8,
// a time within the years 0000-9999. Every launch calls it.
func (p JobParameters) Validate() error {
	for _, name := range p.Names() {
		v := p[name]
		if err := validName(name); err != nil {
			return fmt.Errorf("batch: parameter %q: %w", name, err)
		}
		ok := false
		switch v.Type {
		case ParamString:
			_, ok = v.Value.(string)
		case ParamInt:
			_, ok = v.Value.(int64)
		case ParamFloat:
			_, ok = v.Value.(float64)
		case ParamBool:
			_, ok = v.Value.(bool)
		case ParamTime, ParamDate:
			_, ok = v.Value.(time.Time)
		}
		if !ok {
			return fmt.Errorf("batch: parameter %q: value %v (%T) is not of type %q", name, v.Value, v.Value, v.Type)
		}
		if _, err := parseValue(v.Type, v.String()); err != nil {
			return fmt.Errorf("batch: parameter %q: %w", name, err)
		}
	}
	return nil
}

// Identifying returns the identifying parameters only.
func (p JobParameters) Identifying() JobParameters {
	out := JobParameters{}
	for k, v := range p {
		if v.Identifying {
			out[k] = v
		}
	}
	return out
}

// Names returns the parameter names in sorted order.
func (p JobParameters) Names() []string {
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Key returns the identity of the job instance these parameters address
// under one job name: a hash of the identifying parameters, their types and
// values. Non-identifying parameters do not change it.
func (p JobParameters) Key() string {
	var b strings.Builder
	for _, name := range p.Names() {
		v := p[name]
		if !v.Identifying {
			continue
		}
		fmt.Fprintf(&b, "%s(%s)=%q\n", name, v.Type, v.String())
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}

// Format returns the parameters in the command-line syntax that
// [ParseParameters] reads, in name order, one string per parameter.
func (p JobParameters) Format() []string {
	out := make([]string, 0, len(p))
	for _, name := range p.Names() {
		v := p[name]
		s := name
		if !v.Identifying {
			s = "+" + s
		}
		if v.Type != ParamString {
			s += ":" + string(v.Type)
		}
		out = append(out, s+"="+v.String())
	}
	return out
}

type storedParam struct {
	Type        ParamType `json:"type"`
	Value       string    `json:"value"`
	Identifying bool      `json:"identifying"`
}

// MarshalJSON encodes the parameters with their values as strings, so that
// they decode to exactly the same types and values.
func (p JobParameters) MarshalJSON() ([]byte, error) {
	m := make(map[string]storedParam, len(p))
	for k, v := range p {
		m[k] = storedParam{Type: v.Type, Value: v.String(), Identifying: v.Identifying}
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes what MarshalJSON encoded.
func (p *JobParameters) UnmarshalJSON(b []byte) error {
	var m map[string]storedParam
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	out := make(JobParameters, len(m))
	for k, sp := range m {
		v, err := parseValue(sp.Type, sp.Value)
		if err != nil {
			return fmt.Errorf("batch: parameter %q: %w", k, err)
		}
		out[k] = JobParameter{Type: sp.Type, Value: v, Identifying: sp.Identifying}
	}
	*p = out
	return nil
}

// ParseParameter parses one parameter written on a command line:
//
//	name=value              identifying string
//	name:type=value         identifying, typed: string, int, float, bool, time, date
//	+name=value             not identifying
//	+name:type=value        not identifying, typed
//
// The forms name(type)=value and -name=value are read as well, but they need
// quoting in a shell, and a leading '-' reads as a flag on the command line:
// Format writes the forms above. Names are letters, digits, '_', '.' and
// '-', starting with a letter or '_'. Everything after the first '=' is the
// value. A time is written in RFC 3339 (2024-05-01T02:00:00Z), a date as
// 2024-05-01.
func ParseParameter(s string) (string, JobParameter, error) {
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return "", JobParameter{}, fmt.Errorf("batch: parameter %q: want name=value", s)
	}
	key, raw := s[:eq], s[eq+1:]
	p := JobParameter{Type: ParamString, Identifying: true}
	if strings.HasPrefix(key, "+") || strings.HasPrefix(key, "-") {
		p.Identifying = false
		key = key[1:]
	}
	if open := strings.IndexByte(key, '('); open >= 0 {
		if !strings.HasSuffix(key, ")") {
			return "", JobParameter{}, fmt.Errorf("batch: parameter %q: want name:type=value", s)
		}
		p.Type = ParamType(key[open+1 : len(key)-1])
		key = key[:open]
	} else if name, typ, ok := strings.Cut(key, ":"); ok {
		p.Type = ParamType(typ)
		key = name
	}
	if err := validName(key); err != nil {
		return "", JobParameter{}, fmt.Errorf("batch: parameter %q: %w", s, err)
	}
	v, err := parseValue(p.Type, raw)
	if err != nil {
		return "", JobParameter{}, fmt.Errorf("batch: parameter %q: %w", s, err)
	}
	p.Value = v
	return key, p, nil
}

// ParseParameters parses command-line parameters with [ParseParameter]. A
// name given twice is an error.
func ParseParameters(args []string) (JobParameters, error) {
	out := JobParameters{}
	for _, a := range args {
		name, p, err := ParseParameter(a)
		if err != nil {
			return nil, err
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("batch: parameter %q given twice", name)
		}
		out[name] = p
	}
	return out, nil
}

func validName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	for i, r := range name {
		switch {
		case r == '_' || unicode.IsLetter(r) && r < unicode.MaxASCII:
		case i > 0 && (r == '.' || r == '-' || r >= '0' && r <= '9'):
		default:
			return fmt.Errorf("invalid character %q in name %q", r, name)
		}
	}
	return nil
}

func parseValue(t ParamType, s string) (any, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("value is not valid UTF-8: %q", s)
	}
	switch t {
	case ParamString:
		return s, nil
	case ParamInt:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not an int: %q", s)
		}
		return v, nil
	case ParamFloat:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("not a finite float: %q", s)
		}
		return v, nil
	case ParamBool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("not a bool: %q", s)
		}
		return v, nil
	case ParamTime:
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("not an RFC 3339 time: %q", s)
		}
		if y := v.UTC().Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("time %q is outside the years 0000-9999 in UTC", s)
		}
		return v.UTC(), nil
	case ParamDate:
		v, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("not a date (2006-01-02): %q", s)
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown type %q (want string, int, float, bool, time or date)", t)
}
