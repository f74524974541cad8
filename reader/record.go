package reader

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Record is one record of a delimited file, as handed to [CSVConfig.Map].
//
// Its typed helpers look a column up by its header name, parse the value
// with surrounding spaces removed, and return errors that name the file,
// the line and the column:
//
//	reader: csv people.csv line 42: column "amount": strconv.ParseFloat: parsing "1,5": invalid syntax
type Record struct {
	// Fields are the record's fields, unquoted. The slice is the caller's,
	// unless the reader reuses it (CSVConfig.ReuseRecord).
	Fields []string
	// Line is the 1-based line of the file where the record starts.
	Line int64
	// Index is the 1-based number of the record among the records the
	// reader has returned, counted across restarts: the first data record
	// is 1 (a header does not count).
	Index int64
	// File names the input in messages: the reader's [CSVConfig.Name].
	File string
	// Header holds the column names when the file has a header, and is nil
	// otherwise. It is shared by all records of a reader: do not modify it.
	Header []string

	cols   map[string]int // column indexes of Header, when a reader built it
	format string         // the reader's format, for errors
}

// linearColumns is the longest header whose columns Get looks up by
// comparing names rather than through the map.
const linearColumns = 16

// Get returns the field in the column named column in the header. If two
// columns have that name, the first one counts.
func (r Record) Get(column string) (string, error) {
	if r.Header == nil {
		return "", r.columnError(column, errors.New("no header"))
	}
	var (
		i  int
		ok bool
	)
	if r.cols == nil || len(r.Header) <= linearColumns {
		// A record built by hand, or a short header: comparing names
		// (their lengths first) is cheaper than hashing them.
		i = slices.Index(r.Header, column)
		ok = i >= 0
	} else {
		i, ok = r.cols[column]
	}
	if !ok {
		return "", r.columnError(column, errors.New("not in header"))
	}
	if i >= len(r.Fields) {
		return "", r.columnError(column, fmt.Errorf("record has only %d fields", len(r.Fields)))
	}
	return r.Fields[i], nil
}

// Int returns the field in column parsed as a base-10 integer.
func (r Record) Int(column string) (int64, error) {
	s, err := r.Get(column)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, r.columnError(column, err)
	}
	return v, nil
}

// Float returns the field in column parsed as a floating-point number, with
// a '.' as decimal point.
func (r Record) Float(column string) (float64, error) {
	s, err := r.Get(column)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, r.columnError(column, err)
	}
	return v, nil
}

// Bool returns the field in column parsed by [strconv.ParseBool]: 1, t, T,
// TRUE, true, True, 0, f, F, FALSE, false or False.
func (r Record) Bool(column string) (bool, error) {
	s, err := r.Get(column)
	if err != nil {
		return false, err
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, r.columnError(column, err)
	}
	return v, nil
}

// Time returns the field in column parsed by [time.Parse] with layout.
func (r Record) Time(column, layout string) (time.Time, error) {
	s, err := r.Get(column)
	if err != nil {
		return time.Time{}, err
	}
	v, err := time.Parse(layout, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, r.columnError(column, err)
	}
	return v, nil
}

func (r Record) columnError(column string, err error) error {
	return &ParseError{Format: r.format, File: r.File, Line: r.Line, Err: fmt.Errorf("column %q: %w", column, err)}
}

// MapStruct returns a Map function for [CSVConfig] that fills a struct T
// from a file with a header. A field tagged `csv:"name"` gets the column
// called name; other fields are left alone. Tagged fields may be strings,
// integers, unsigned integers, floats, bools (as [Record.Bool] parses them)
// and [time.Time] (RFC 3339 or 2006-01-02); numbers must fit the field's
// type, and an empty number is an error. A tagged column missing from the
// header is an error at the first record.
//
// MapStruct fails if T is not a struct or a tagged field has another type.
func MapStruct[T any]() (func(Record) (T, error), error) {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("reader: MapStruct: %v is not a struct", t)
	}
	type column struct {
		name  string
		index int
	}
	var columns []column
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := f.Tag.Lookup("csv")
		if !ok || name == "-" {
			continue
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("reader: MapStruct: %v.%s is tagged but not exported", t, f.Name)
		}
		if !settable(f.Type) {
			return nil, fmt.Errorf("reader: MapStruct: %v.%s has unsupported type %v", t, f.Name, f.Type)
		}
		columns = append(columns, column{name: name, index: i})
	}
	return func(rec Record) (T, error) {
		var v T
		rv := reflect.ValueOf(&v).Elem()
		for _, c := range columns {
			s, err := rec.Get(c.name)
			if err != nil {
				return v, err
			}
			if err := setField(rv.Field(c.index), s); err != nil {
				return v, rec.columnError(c.name, err)
			}
		}
		return v, nil
	}, nil
}

var timeType = reflect.TypeFor[time.Time]()

func settable(t reflect.Type) bool {
	if t == timeType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func setField(v reflect.Value, s string) error {
	if v.Type() == timeType {
		s = strings.TrimSpace(s)
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, s); err != nil {
				return fmt.Errorf("parsing time %q: want RFC 3339 or 2006-01-02", s)
			}
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	}
	return nil
}
