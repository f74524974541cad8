package reader

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
)

// DefaultMaxLineBytes is the default of the MaxLineBytes settings of the
// line readers ([FixedWidthConfig], [JSONLinesConfig]) and of
// [JSONArrayConfig.MaxItemBytes].
const DefaultMaxLineBytes = 4 << 20

// lineOptions are the settings shared by the readers of line-oriented files.
type lineOptions struct {
	format, name string
	path         string
	open         func() (io.ReadSeekCloser, error)
	check        InputCheck
	maxLine      int64
	headerLines  int
	header       func(lines []string) error
	footerLines  int
	footer       func(lines []string, records int64) error
	comment      string
}

func (o *lineOptions) validate() error {
	switch {
	case (o.path == "") == (o.open == nil):
		return errors.New("exactly one of Path and Open is required")
	case o.maxLine < 0:
		return fmt.Errorf("negative MaxLineBytes %d", o.maxLine)
	case o.headerLines < 0:
		return fmt.Errorf("negative HeaderLines %d", o.headerLines)
	case o.footerLines < 0:
		return fmt.Errorf("negative FooterLines %d", o.footerLines)
	case o.footer != nil && o.footerLines == 0:
		return errors.New("a Footer func needs FooterLines")
	case o.header != nil && o.headerLines == 0:
		return errors.New("a Header func needs HeaderLines")
	}
	if o.maxLine == 0 {
		o.maxLine = DefaultMaxLineBytes
	}
	return nil
}

// rawLine is one line of the input, without its line break.
type rawLine struct {
	text   string
	line   int64 // 1-based line number
	end    int64 // offset just after the line break
	record int64 // 1-based number among the data lines
	err    error // the line could not be taken (too long)
}

// linePos is the restart position of a line reader: just after the last
// line whose item was returned.
type linePos struct {
	offset  int64
	line    int64
	count   int64 // items returned
	records int64 // data lines passed, good or bad
}

// lineFile reads a line-oriented file and turns each data line into a T: the
// engine of FixedWidth and JSONLines. It keeps FooterLines lines of
// look-ahead so that the footer is never taken for data.
type lineFile[T any] struct {
	opts  lineOptions
	parse func(l rawLine, index int64) (T, error)

	// Set by Open, cleared by Close.
	in      *input
	br      *bufio.Reader
	off     int64 // offset of the next byte br returns
	line    int64 // lines read
	records int64 // data lines read
	ahead   []rawLine
	eof     bool
	header  []string
	pos     linePos
	err     error // sticky: io.EOF or an error the reader cannot go on after
}

func (l *lineFile[T]) key(suffix string) string { return l.opts.name + "." + suffix }

func (l *lineFile[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("reader: %s %s: "+format, append([]any{l.opts.format, l.opts.name}, args...)...)
}

func (l *lineFile[T]) parseError(line int64, err error) *ParseError {
	return &ParseError{Format: l.opts.format, File: l.opts.name, Line: line, Err: err}
}

// Open opens the input: on a first run at its start, reading the header
// lines; on a restart (ec holds a position of this reader) at the stored
// offset, after checking that the input is the one the position was taken
// on, with the stored header lines. The Header func is called with the header
// lines either way.
func (l *lineFile[T]) Open(_ context.Context, ec batch.ExecutionContext) error {
	if l.in != nil {
		return l.errorf("already open")
	}
	var pos linePos
	restart, err := ec.Get(l.key("offset"), &pos.offset)
	var header []string
	var was *inputIdentity
	if err == nil && restart {
		err = l.restore(ec, &pos, &header, &was)
	}
	if err != nil {
		return l.errorf("restore: %w", err)
	}
	in, err := openInput(l.opts.path, l.opts.open)
	if err != nil {
		return l.errorf("%w", err)
	}
	if restart {
		if err := in.resume(pos.offset, was, l.opts.check); err != nil {
			_ = in.Close()
			return l.errorf("restart at line %d (byte %d): %w", pos.line+1, pos.offset, err)
		}
	}
	l.in, l.br = in, bufio.NewReaderSize(in, bufferSize)
	l.off, l.line, l.records = pos.offset, pos.line, pos.records
	l.ahead, l.eof, l.err, l.header, l.pos = nil, false, nil, header, pos
	if !restart {
		if b, _ := l.br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
			_, _ = l.br.Discard(len(utf8BOM))
			l.off += int64(len(utf8BOM))
		}
		for len(l.header) < l.opts.headerLines {
			rl, err := l.readLine()
			if err == nil {
				err = rl.err
			}
			if err != nil {
				if err == io.EOF {
					err = l.parseError(l.line+1, fmt.Errorf("header: %d lines expected, the input has %d", l.opts.headerLines, len(l.header)))
				} else {
					err = l.parseError(l.line, fmt.Errorf("header: %w", err))
				}
				_ = l.Close(context.Background())
				return err
			}
			l.header = append(l.header, rl.text)
		}
		l.pos = linePos{offset: l.off, line: l.line}
	}
	l.in.hist.setPin(l.pos.offset)
	if l.opts.header != nil {
		if err := l.opts.header(l.header); err != nil {
			_ = l.Close(context.Background())
			return l.parseError(1, fmt.Errorf("header: %w", err))
		}
	}
	return nil
}

func (l *lineFile[T]) restore(ec batch.ExecutionContext, pos *linePos, header *[]string, was **inputIdentity) error {
	for _, v := range []struct {
		suffix string
		dst    any
	}{{"line", &pos.line}, {"count", &pos.count}, {"records", &pos.records}} {
		ok, err := ec.Get(l.key(v.suffix), v.dst)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("key %q missing", l.key(v.suffix))
		}
	}
	if pos.offset < 0 || pos.line < 0 || pos.count < 0 || pos.records < pos.count {
		return fmt.Errorf("invalid position %+v", *pos)
	}
	if l.opts.headerLines > 0 {
		if _, err := ec.Get(l.key("header"), header); err != nil {
			return err
		}
		if len(*header) != l.opts.headerLines {
			return fmt.Errorf("key %q holds %d lines, want %d", l.key("header"), len(*header), l.opts.headerLines)
		}
	}
	var id inputIdentity
	ok, err := ec.Get(l.key("input"), &id)
	if ok && err == nil {
		*was = &id
	}
	return err
}

// readLine reads the next line. A line longer than the maximum is read past
// and returned with err set; io.EOF comes at the end of the input.
func (l *lineFile[T]) readLine() (rawLine, error) {
	start := l.off
	var (
		buf     []byte
		tooLong bool
		text    string
	)
	for {
		frag, err := l.br.ReadSlice('\n')
		l.off += int64(len(frag))
		switch {
		case tooLong:
		case buf == nil && err != bufio.ErrBufferFull && int64(len(frag)) <= l.opts.maxLine+2:
			text = string(frag) // the usual case: the whole line in one piece
		case int64(len(buf)+len(frag)) > l.opts.maxLine+2:
			tooLong, buf = true, nil
		default:
			buf = append(buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && l.off == start {
			return rawLine{}, io.EOF
		}
		if err != nil && err != io.EOF {
			return rawLine{}, l.errorf("read after line %d: %w", l.line, err)
		}
		break
	}
	l.line++
	rl := rawLine{line: l.line, end: l.off}
	if buf != nil {
		text = string(buf)
	}
	text = strings.TrimSuffix(text, "\n")
	text = strings.TrimSuffix(text, "\r")
	if tooLong || int64(len(text)) > l.opts.maxLine {
		rl.err = fmt.Errorf("%w: more than %d bytes", ErrRecordTooLong, l.opts.maxLine)
		return rl, nil
	}
	rl.text = text
	return rl, nil
}

// next returns the next data line, keeping the footer's lines in look-ahead.
// At the end of the data it checks the footer and returns io.EOF.
func (l *lineFile[T]) next() (rawLine, error) {
	for !l.eof && len(l.ahead) <= l.opts.footerLines {
		rl, err := l.readLine()
		if err == io.EOF {
			l.eof = true
			break
		}
		if err != nil {
			return rawLine{}, err
		}
		if rl.err == nil && (strings.TrimSpace(rl.text) == "" ||
			l.opts.comment != "" && strings.HasPrefix(rl.text, l.opts.comment)) {
			continue
		}
		l.records++
		rl.record = l.records
		l.ahead = append(l.ahead, rl)
	}
	if len(l.ahead) > l.opts.footerLines {
		rl := l.ahead[0]
		l.ahead = append(l.ahead[:0], l.ahead[1:]...)
		if rl.err != nil {
			return rl, l.parseError(rl.line, rl.err)
		}
		return rl, nil
	}
	if l.opts.footerLines == 0 {
		return rawLine{}, io.EOF
	}
	if len(l.ahead) < l.opts.footerLines {
		return rawLine{}, l.parseError(l.line, fmt.Errorf("footer: %d lines expected at the end, found %d", l.opts.footerLines, len(l.ahead)))
	}
	footer := make([]string, len(l.ahead))
	for i, rl := range l.ahead {
		if rl.err != nil {
			return rawLine{}, l.parseError(rl.line, fmt.Errorf("footer: %w", rl.err))
		}
		footer[i] = rl.text
	}
	if l.opts.footer != nil {
		if err := l.opts.footer(footer, l.records-int64(len(footer))); err != nil {
			return rawLine{}, l.parseError(l.ahead[0].line, fmt.Errorf("footer: %w", err))
		}
	}
	return rawLine{}, io.EOF
}

// Read returns the item of the next data line, and io.EOF after the last
// one. A line that cannot be made an item is a [*ParseError] and the next
// Read goes on with the line after it.
func (l *lineFile[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if l.in == nil {
		return zero, l.errorf("not open")
	}
	if l.err != nil {
		return zero, l.err
	}
	rl, err := l.next()
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || rl.line == 0 {
			l.err = err // the end, a bad footer, a failing input
		}
		return zero, err
	}
	item, err := l.parse(rl, l.pos.count+1)
	if err != nil {
		if pe := (*ParseError)(nil); errors.As(err, &pe) {
			return zero, err
		}
		return zero, l.parseError(rl.line, err)
	}
	l.pos = linePos{offset: rl.end, line: rl.line, count: l.pos.count + 1, records: rl.record}
	l.in.hist.setPin(rl.end)
	return item, nil
}

// Update stores the restart position in ec: the byte offset and line just
// after the last line whose item Read returned, the items and data lines
// passed, the header lines, and the input's identity (see [InputCheck]).
func (l *lineFile[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if l.in == nil {
		return l.errorf("not open")
	}
	if ec == nil {
		return l.errorf("Update with a nil execution context")
	}
	err := errors.Join(
		ec.Put(l.key("offset"), l.pos.offset),
		ec.Put(l.key("line"), l.pos.line),
		ec.Put(l.key("count"), l.pos.count),
		ec.Put(l.key("records"), l.pos.records),
	)
	if l.opts.headerLines > 0 {
		err = errors.Join(err, ec.Put(l.key("header"), l.header))
	}
	id, ierr := l.in.hist.identity(l.pos.offset)
	err = errors.Join(err, ierr)
	if ierr == nil {
		err = errors.Join(err, ec.Put(l.key("input"), id))
	}
	if err != nil {
		return l.errorf("%w", err)
	}
	return nil
}

// Close closes the input. Closing a reader that is not open does nothing.
func (l *lineFile[T]) Close(context.Context) error {
	if l.in == nil {
		return nil
	}
	err := l.in.Close()
	*l = lineFile[T]{opts: l.opts, parse: l.parse}
	if err != nil {
		return l.errorf("close: %w", err)
	}
	return nil
}
