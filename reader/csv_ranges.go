package reader

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
)

// Keys of the partitions that [CSVRanges] makes.
const (
	PartitionStart    = "start"    // where a range's first record starts (int64 byte offset)
	PartitionEnd      = "end"      // where the next range starts (int64); absent in the last range
	PartitionLine     = "line"     // the lines before PartitionStart (int64)
	PartitionHeader   = "header"   // the input's header ([]string), with CSVConfig.Header
	PartitionPreamble = "preamble" // the lines CSVConfig.SkipLines skips ([]string)
)

// CSVRange is the part of a CSV input that one partition reads: the records
// that start at byte Start or after it and before byte End (0: up to the end
// of the input). Start is the start of a record (or of the blank or comment
// lines before it), and Line the number of lines before it, so that errors
// name the lines of the whole file. Header and Preamble are the input's
// header and skipped lines, which are at its start, outside most ranges.
type CSVRange struct {
	Start, End, Line int64
	Header           []string
	Preamble         []string
}

// CSVRanges returns a partitioner that cuts the input of cfg into up to
// partitions byte ranges of about equal size, each starting at a record,
// for a partitioned step whose partitions read one range each: partition
// "pN" holds its range under the keys PartitionStart, PartitionEnd,
// PartitionLine, PartitionHeader and PartitionPreamble, which [CSVRangeOf]
// turns back into a [CSVRange] for [CSVConfig.Range]. cfg is the
// configuration of the partitions' readers (its Range unset): the input is
// split by their rules, quoted line breaks, comments and blank lines
// included.
//
// To find where records start, the partitioner reads the input through
// once with encoding/csv (about four million records a second), which is
// why it is cut by records and not by lines: a line break inside a quoted
// field does not start a record. A gzip input cannot be cut, nor one with
// FooterRecords. An input too small to cut gives fewer ranges. A record
// that is malformed or longer than MaxRecordBytes is left to the range
// that holds it, whose reader reports it.
func CSVRanges[T any](cfg CSVConfig[T], partitions int) (batch.Partitioner, error) {
	switch {
	case partitions < 1:
		return nil, fmt.Errorf("reader: csv ranges: %d partitions, want 1 or more", partitions)
	case cfg.Range != nil:
		return nil, errors.New("reader: csv ranges: the configuration already has a Range")
	case cfg.FooterRecords > 0:
		return nil, errors.New("reader: csv ranges: an input with FooterRecords cannot be cut")
	}
	c, err := NewCSV(cfg) // the same checks and defaults as the readers'
	if err != nil {
		return nil, err
	}
	cfg = c.cfg
	return batch.PartitionerFunc(func(ctx context.Context) ([]batch.Partition, error) {
		ranges, err := cutCSV(ctx, cfg, partitions)
		if err != nil {
			return nil, fmt.Errorf("reader: csv ranges %s: %w", cfg.Name, err)
		}
		parts := make([]batch.Partition, len(ranges))
		for i, r := range ranges {
			ec := batch.ExecutionContext{}
			err := errors.Join(ec.Put(PartitionStart, r.Start), ec.Put(PartitionLine, r.Line),
				ec.Put(PartitionHeader, r.Header), ec.Put(PartitionPreamble, r.Preamble))
			if r.End > 0 {
				err = errors.Join(err, ec.Put(PartitionEnd, r.End))
			}
			if err != nil {
				return nil, fmt.Errorf("reader: csv ranges %s: %w", cfg.Name, err)
			}
			parts[i] = batch.Partition{Name: fmt.Sprintf("p%d", i+1), Context: ec}
		}
		return parts, nil
	}), nil
}

// CSVRangeOf returns the range of a partition made by [CSVRanges].
func CSVRangeOf(p batch.Partition) (*CSVRange, error) {
	var r CSVRange
	ok, err := p.Context.Get(PartitionStart, &r.Start)
	if err == nil && !ok {
		err = fmt.Errorf("no key %q", PartitionStart)
	}
	for _, v := range []struct {
		key string
		dst any
	}{{PartitionEnd, &r.End}, {PartitionLine, &r.Line}, {PartitionHeader, &r.Header}, {PartitionPreamble, &r.Preamble}} {
		if err == nil {
			_, err = p.Context.Get(v.key, v.dst)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reader: csv range of partition %s: %w", p.Name, err)
	}
	return &r, nil
}

// cutCSV reads the input of cfg through and returns up to n ranges of
// about equal size that start at records.
func cutCSV[T any](ctx context.Context, cfg CSVConfig[T], n int) ([]CSVRange, error) {
	in, err := openInput(cfg.Path, cfg.Open)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if in.gz != nil {
		return nil, errors.New("a gzip input cannot be cut into byte ranges")
	}
	size := in.hist.size
	src := &capReader{r: in, limit: satAdd(int64(cfg.MaxRecordBytes), bufferSize)}
	br := bufio.NewReaderSize(src, bufferSize)
	// base is the bytes before the csv.Reader's first.
	preamble, base, err := readStart(br, src, cfg.Name, cfg.SkipLines, int64(cfg.MaxRecordBytes))
	if err != nil {
		return nil, err
	}
	baseLine := int64(cfg.SkipLines)
	r := csv.NewReader(br)
	r.Comma, r.Comment, r.LazyQuotes, r.TrimLeadingSpace = cfg.Comma, cfg.Comment, cfg.LazyQuotes, cfg.TrimLeadingSpace
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	// after returns the offset and the line just after the record just read.
	after := func(fields []string) (int64, int64) {
		last, _ := r.FieldPos(len(fields) - 1)
		return base + r.InputOffset(), baseLine + int64(last) + int64(strings.Count(fields[len(fields)-1], "\n"))
	}
	var header []string
	start, startLine := base, baseLine
	if cfg.Header {
		src.start = base
		fields, err := r.Read()
		switch {
		case err == io.EOF:
			return []CSVRange{{Start: base, Line: baseLine, Preamble: preamble}}, nil
		case err != nil:
			return nil, fmt.Errorf("header: %w", err)
		}
		header = append([]string(nil), fields...)
		start, startLine = after(fields)
	}
	ranges := []CSVRange{{Start: start, Line: startLine, Header: header, Preamble: preamble}}
	step := (size - start) / int64(n)
	next := start + step
	for records := 0; len(ranges) < n; records++ {
		if records%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		src.start = base + r.InputOffset()
		fields, err := r.Read()
		if err == io.EOF || src.tooLong {
			break // the rest is the last range's, whose reader reports a record too long
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			continue // a malformed record is its range's
		}
		if err != nil {
			return nil, err
		}
		off, line := after(fields)
		if off >= next && off < size {
			ranges[len(ranges)-1].End = off
			ranges = append(ranges, CSVRange{Start: off, Line: line, Header: header, Preamble: preamble})
			next = off + step
		}
	}
	return ranges, nil
}
