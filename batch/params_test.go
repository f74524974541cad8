package batch_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

func TestParseParameter(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		name string
		want batch.JobParameter
	}{
		{"file=people.csv", "file", batch.StringParam("people.csv")},
		{"file(string)=people.csv", "file", batch.StringParam("people.csv")},
		{"empty=", "empty", batch.StringParam("")},
		{"expr=a=b=c", "expr", batch.StringParam("a=b=c")},
		{"spaced= x y ", "spaced", batch.StringParam(" x y ")},
		{"count(int)=42", "count", batch.IntParam(42)},
		{"neg(int)=-9223372036854775808", "neg", batch.IntParam(-9223372036854775808)},
		{"ratio(float)=0.25", "ratio", batch.FloatParam(0.25)},
		{"big(float)=1e300", "big", batch.FloatParam(1e300)},
		{"dry(bool)=true", "dry", batch.BoolParam(true)},
		{"dry(bool)=0", "dry", batch.BoolParam(false)},
		{"at(time)=2024-05-01T02:00:00Z", "at", batch.TimeParam(at)},
		{"at(time)=2024-05-01T04:00:00+02:00", "at", batch.TimeParam(at)},
		{"at(time)=2024-05-01T02:00:00.5Z", "at", batch.TimeParam(at.Add(500 * time.Millisecond))},
		{"day(date)=2024-05-01", "day", batch.DateParam(at)},
		{"-run.id(int)=7", "run.id", batch.IntParam(7).NonIdentifying()},
		{"-note=hello", "note", batch.StringParam("hello").NonIdentifying()},
		{"_x-1.y=v", "_x-1.y", batch.StringParam("v")},
		// The forms that need no quoting in a shell.
		{"count:int=42", "count", batch.IntParam(42)},
		{"day:date=2024-05-01", "day", batch.DateParam(at)},
		{"at:time=2024-05-01T02:00:00Z", "at", batch.TimeParam(at)},
		{"+run.id:int=7", "run.id", batch.IntParam(7).NonIdentifying()},
		{"+note=hello", "note", batch.StringParam("hello").NonIdentifying()},
		{"url=http://x/y:z", "url", batch.StringParam("http://x/y:z")},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, p, err := batch.ParseParameter(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.name, name)
			require.Equal(t, tt.want.Type, p.Type)
			require.Equal(t, tt.want.Identifying, p.Identifying)
			if want, ok := tt.want.Value.(time.Time); ok {
				got, ok := p.Value.(time.Time)
				require.True(t, ok, "%T", p.Value)
				require.True(t, want.Equal(got), "%v != %v", want, got)
				require.Equal(t, time.UTC, got.Location())
				return
			}
			require.Equal(t, tt.want.Value, p.Value)
		})
	}
}

func TestParseParameterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, message string }{
		{"noequals", "want name=value"},
		{"", "want name=value"},
		{"=value", "empty name"},
		{"-=value", "empty name"},
		{"(int)=1", "empty name"},
		{"n(int=1", "want name:type=value"},
		{"n:integer=1", "unknown type"},
		{"n:=1", "unknown type"},
		{"n:int=x", "not an int"},
		{"+:int=1", "empty name"},
		{"++n=1", "invalid character"},
		{"n(integer)=1", "unknown type"},
		{"n()=1", "unknown type"},
		{"n(int)=one", "not an int"},
		{"n(int)=1.5", "not an int"},
		{"n(int)=9223372036854775808", "not an int"},
		{"n(float)=abc", "not a finite float"},
		{"n(float)=NaN", "not a finite float"},
		{"n(float)=Inf", "not a finite float"},
		{"n(float)=1e400", "not a finite float"},
		{"n(bool)=yes", "not a bool"},
		{"n(time)=2024-05-01", "not an RFC 3339 time"},
		{"n(date)=2024-05-01T00:00:00Z", "not a date"},
		{"n(date)=2024-13-01", "not a date"},
		{"1n=v", "invalid character"},
		{".n=v", "invalid character"},
		{"--n=v", "invalid character"},
		{"a b=v", "invalid character"},
		{"nä=v", "invalid character"},
		{"é=v", "invalid character"},
		{"n)=v", "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, _, err := batch.ParseParameter(tt.in)
			require.ErrorContains(t, err, tt.message)
			require.ErrorContains(t, err, "batch: parameter")
		})
	}
}

func TestParseParameters(t *testing.T) {
	t.Parallel()
	p, err := batch.ParseParameters([]string{"file=a.csv", "day(date)=2024-05-01", "-run.id(int)=3", "dry(bool)=false"})
	require.NoError(t, err)
	require.Equal(t, []string{"day", "dry", "file", "run.id"}, p.Names())

	s, ok := p.String("file")
	require.True(t, ok)
	require.Equal(t, "a.csv", s)
	n, ok := p.Int("run.id")
	require.True(t, ok)
	require.Equal(t, int64(3), n)
	b, ok := p.Bool("dry")
	require.True(t, ok)
	require.False(t, b)
	d, ok := p.Time("day")
	require.True(t, ok)
	require.Equal(t, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), d)
	_, ok = p.Int("file")
	require.False(t, ok, "wrong type")
	_, ok = p.Float("missing")
	require.False(t, ok)

	require.Equal(t, []string{"day", "dry", "file"}, p.Identifying().Names())

	empty, err := batch.ParseParameters(nil)
	require.NoError(t, err)
	require.Empty(t, empty)

	_, err = batch.ParseParameters([]string{"a=1", "b(int)=x"})
	require.ErrorContains(t, err, "not an int")
	_, err = batch.ParseParameters([]string{"a=1", "-a(int)=2"})
	require.ErrorContains(t, err, `parameter "a" given twice`)
}

func allTypes() batch.JobParameters {
	return batch.JobParameters{
		"file":  batch.StringParam("in/people=2024.csv"),
		"blank": batch.StringParam(""),
		"count": batch.IntParam(-12),
		"ratio": batch.FloatParam(1.0 / 3),
		"dry":   batch.BoolParam(true),
		"at":    batch.TimeParam(time.Date(2024, 5, 1, 2, 3, 4, 567890123, time.FixedZone("CEST", 2*3600))),
		"day":   batch.DateParam(time.Date(2024, 2, 29, 23, 59, 0, 0, time.UTC)),
		"run":   batch.IntParam(9).NonIdentifying(),
		"note":  batch.StringParam("x").NonIdentifying(),
	}
}

// requireSameParams compares parameters, times by instant.
func requireSameParams(t *testing.T, want, got batch.JobParameters) {
	t.Helper()
	require.Equal(t, want.Names(), got.Names())
	for name, w := range want {
		g := got[name]
		require.Equal(t, w.Type, g.Type, name)
		require.Equal(t, w.Identifying, g.Identifying, name)
		if wt, ok := w.Value.(time.Time); ok {
			gt, ok := g.Value.(time.Time)
			require.True(t, ok, "%s: %T", name, g.Value)
			require.True(t, wt.Equal(gt), "%s: %v != %v", name, wt, gt)
			continue
		}
		require.Equal(t, w.Value, g.Value, name)
	}
}

func TestParametersFormatRoundTrip(t *testing.T) {
	t.Parallel()
	p := allTypes()
	args := p.Format()
	require.Equal(t, []string{
		"at:time=2024-05-01T00:03:04.567890123Z",
		"blank=",
		"count:int=-12",
		"day:date=2024-02-29",
		"dry:bool=true",
		"file=in/people=2024.csv",
		"+note=x",
		"ratio:float=0.3333333333333333",
		"+run:int=9",
	}, args)
	back, err := batch.ParseParameters(args)
	require.NoError(t, err)
	requireSameParams(t, p, back)
	require.Equal(t, p.Key(), back.Key())
}

func TestParametersJSONRoundTrip(t *testing.T) {
	t.Parallel()
	p := allTypes()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var back batch.JobParameters
	require.NoError(t, json.Unmarshal(b, &back))
	requireSameParams(t, p, back)
	require.Equal(t, p.Key(), back.Key())

	// The methods directly, and an empty set.
	b, err = batch.JobParameters{}.MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(b))
	require.NoError(t, back.UnmarshalJSON(b))
	require.Empty(t, back)

	require.ErrorContains(t, back.UnmarshalJSON([]byte(`{"n":{"type":"int","value":"x","identifying":true}}`)), `parameter "n"`)
	require.Error(t, back.UnmarshalJSON([]byte(`[1]`)))
}

func TestParametersKey(t *testing.T) {
	t.Parallel()
	base := batch.JobParameters{"file": batch.StringParam("a.csv"), "day": batch.DateParam(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))}
	key := base.Key()
	require.Len(t, key, 32)

	withNonID := batch.JobParameters{"file": base["file"], "day": base["day"], "run.id": batch.IntParam(1).NonIdentifying()}
	require.Equal(t, key, withNonID.Key(), "non-identifying parameters do not change the key")
	withNonID["run.id"] = batch.IntParam(2).NonIdentifying()
	require.Equal(t, key, withNonID.Key())

	demoted := batch.JobParameters{"file": base["file"], "day": base["day"].NonIdentifying()}
	require.NotEqual(t, key, demoted.Key(), "a parameter made non-identifying leaves the identity")

	require.NotEqual(t,
		batch.JobParameters{"n": batch.StringParam("1")}.Key(),
		batch.JobParameters{"n": batch.IntParam(1)}.Key(), "the type is part of the identity")
	require.NotEqual(t,
		batch.JobParameters{"n": batch.IntParam(1)}.Key(),
		batch.JobParameters{"n": batch.FloatParam(1)}.Key())
	require.NotEqual(t,
		batch.JobParameters{"a": batch.StringParam("x")}.Key(),
		batch.JobParameters{"b": batch.StringParam("x")}.Key(), "the name is part of the identity")
	require.Equal(t, batch.JobParameters{}.Key(), batch.JobParameters(nil).Key())
	require.Equal(t, batch.JobParameters{}.Key(), batch.JobParameters{"x": batch.StringParam("y").NonIdentifying()}.Key())

	// The same instant in another zone is the same parameter.
	at := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	require.Equal(t,
		batch.JobParameters{"at": batch.TimeParam(at)}.Key(),
		batch.JobParameters{"at": batch.TimeParam(at.In(time.FixedZone("X", -5*3600)))}.Key())
}

func TestParametersKeyIsInjective(t *testing.T) {
	t.Parallel()
	// Two different sets of identifying parameters must address two
	// different instances, whatever the values contain.
	one := batch.JobParameters{"a": batch.StringParam("x\nb(string)=y")}
	two := batch.JobParameters{"a": batch.StringParam("x"), "b": batch.StringParam("y")}
	require.NotEqual(t, one.Key(), two.Key())
}

func TestTimeParameterOutsideFourDigitYears(t *testing.T) {
	t.Parallel()
	// Such a time would format as a year of five digits or a negative one,
	// which no store reads back.
	for _, s := range []string{"at(time)=0000-01-01T00:00:00+01:00", "at(time)=9999-12-31T23:30:00-01:00"} {
		_, _, err := batch.ParseParameter(s)
		require.ErrorContains(t, err, "outside the years 0000-9999", s)
	}
	_, _, err := batch.ParseParameter("at(time)=9999-12-31T23:30:00+01:00")
	require.NoError(t, err)

	far := batch.JobParameters{"at": {Type: batch.ParamTime, Value: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Identifying: true}}
	require.Error(t, far.Validate())
	engine := mustLauncher(t, launcher.Config{Repository: openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))})
	step, err := batch.NewTaskletStep("noop", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	_, err = engine.Run(context.Background(), job, far)
	require.ErrorIs(t, err, batch.ErrInvalidConfig, "refused before anything is stored")
}

func TestParametersInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	_, _, err := batch.ParseParameter("file=caf\xe9.csv") // a Latin-1 file name
	require.ErrorContains(t, err, "not valid UTF-8")
	bad := batch.JobParameters{"file": batch.StringParam("caf\xe9.csv")}
	require.ErrorContains(t, bad.Validate(), "not valid UTF-8")
	require.NoError(t, batch.JobParameters{"file": batch.StringParam("café.csv")}.Validate())
}

func TestParametersValidateTypes(t *testing.T) {
	t.Parallel()
	require.Error(t, batch.JobParameters{"n": {Type: batch.ParamInt, Value: 3}}.Validate(), "int, not int64")
	require.Error(t, batch.JobParameters{"n": {Type: "decimal", Value: "3"}}.Validate())
	require.Error(t, batch.JobParameters{"bad name": batch.StringParam("x")}.Validate())
	require.NoError(t, batch.JobParameters{"n": batch.IntParam(3), "d": batch.DateParam(time.Now())}.Validate())
}
