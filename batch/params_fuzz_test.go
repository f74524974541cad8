package batch_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// FuzzParseParameter checks that ParseParameter never panics and that a
// parameter it accepts formats (JobParameters.Format) to a string that parses
// back to the same name, type, identification and value, and survives the
// JSON encoding the repositories store.
func FuzzParseParameter(f *testing.F) {
	for _, s := range []string{
		"file=people.csv",
		"file(string)=a=b",
		"-run.id(int)=42",
		"count(int)=-9223372036854775808",
		"ratio(float)=1e-300",
		"ratio(float)=-0",
		"dry(bool)=T",
		"at(time)=2024-05-01T02:00:00.123456789+05:30",
		"at(time)=0000-01-01T00:00:00Z",
		"at(time)=0000-01-01T00:00:00+01:00",
		"day(date)=2024-02-29",
		"-note=",
		"n(int=1",
		"(int)=1",
		"=",
		"x(float)=NaN",
		"_a.b-c=\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, p, err := batch.ParseParameter(s)
		if err != nil {
			return
		}
		if err := (batch.JobParameters{name: p}).Validate(); err != nil {
			t.Fatalf("%q parsed, but does not validate: %v", s, err)
		}
		args := batch.JobParameters{name: p}.Format()
		if len(args) != 1 {
			t.Fatalf("Format gave %d strings", len(args))
		}
		name2, p2, err := batch.ParseParameter(args[0])
		if err != nil {
			t.Fatalf("%q parsed, but its format %q does not: %v", s, args[0], err)
		}
		if name2 != name {
			t.Fatalf("%q: name %q, then %q: %q", s, name, args[0], name2)
		}
		sameParam(t, p, p2)

		b, err := json.Marshal(batch.JobParameters{name: p})
		if err != nil {
			t.Fatalf("%q: marshal: %v", s, err)
		}
		var back batch.JobParameters
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q: unmarshal %s: %v", s, b, err)
		}
		sameParam(t, p, back[name])
	})
}

func sameParam(t *testing.T, a, b batch.JobParameter) {
	t.Helper()
	if a.Type != b.Type || a.Identifying != b.Identifying {
		t.Fatalf("%+v became %+v", a, b)
	}
	if at, ok := a.Value.(time.Time); ok {
		if bt, ok := b.Value.(time.Time); !ok || !at.Equal(bt) {
			t.Fatalf("%v became %v", a.Value, b.Value)
		}
		return
	}
	if a.Value != b.Value {
		t.Fatalf("%#v became %#v", a.Value, b.Value)
	}
}
