package reader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/chunkwise/chunkwise/batch"
)

// StreamReader is a reader that keeps restart state: what [MultiFile] needs
// of the reader of each file.
type StreamReader[T any] interface {
	batch.ItemReader[T]
	batch.ItemStream
}

// MultiFileConfig configures a [MultiFile] reader. One of Paths and Glob, and
// Reader, are required.
type MultiFileConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context. Default
	// "files".
	Name string
	// Paths are the files to read, in this order.
	Paths []string
	// Glob is a pattern ([filepath.Glob]) of the files to read, in the
	// order of their names.
	Glob string
	// AllowNone lets the reader read nothing when the list is empty or the
	// pattern matches no file. Default false: that fails Open, since it is
	// more often a wrong directory than a quiet day.
	AllowNone bool
	// Reader returns the reader of one file, such as a [CSV], [FixedWidth]
	// or [JSONLines] with that Path. It is called when the stream reaches
	// the file; the MultiFile opens, updates and closes what it returns.
	// Required.
	Reader func(path string) (StreamReader[T], error)
}

// MultiFile reads several files as one stream: the items of the first file,
// then those of the second, and so on. Create one with [NewMultiFile].
//
// Update stores the number of files, a hash of their list, the index of the
// file being read and that file's reader's own state; a restart opens that
// file at its stored position. The list is taken when the step first opens
// the reader: a restart whose list differs (a file added, removed or
// renamed) is refused with [ErrInputChanged], since the stored index would
// no longer point at the same file.
//
// A MultiFile is not safe for concurrent use.
type MultiFile[T any] struct {
	cfg MultiFileConfig[T]

	// Set by Open, cleared by Close.
	files []string
	index int // of the file being read; len(files) at the end
	cur   StreamReader[T]
	open  bool
	err   error // sticky: a file that could not be opened
}

var (
	_ batch.ItemReader[int] = (*MultiFile[int])(nil)
	_ batch.ItemStream      = (*MultiFile[int])(nil)
)

// NewMultiFile returns a reader configured by cfg, or an error if cfg is
// invalid. It does not look for the files: [MultiFile.Open] does.
func NewMultiFile[T any](cfg MultiFileConfig[T]) (*MultiFile[T], error) {
	if cfg.Name == "" {
		cfg.Name = "files"
	}
	switch {
	case (len(cfg.Paths) == 0) == (cfg.Glob == ""):
		return nil, fmt.Errorf("reader: files %s: exactly one of Paths and Glob is required", cfg.Name)
	case cfg.Reader == nil:
		return nil, fmt.Errorf("reader: files %s: Reader is required", cfg.Name)
	}
	if cfg.Glob != "" {
		if _, err := filepath.Match(cfg.Glob, ""); err != nil {
			return nil, fmt.Errorf("reader: files %s: pattern %q: %w", cfg.Name, cfg.Glob, err)
		}
	}
	cfg.Paths = slices.Clone(cfg.Paths)
	return &MultiFile[T]{cfg: cfg}, nil
}

func (m *MultiFile[T]) key(suffix string) string { return m.cfg.Name + "." + suffix }

func (m *MultiFile[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("reader: files %s: "+format, append([]any{m.cfg.Name}, args...)...)
}

// Files returns the files of the stream, once the reader is open.
func (m *MultiFile[T]) Files() []string { return slices.Clone(m.files) }

func listHash(files []string) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Open lists the files and opens the one a restart resumes in, at its
// stored position, or the first.
func (m *MultiFile[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if m.open {
		return m.errorf("already open")
	}
	files := m.cfg.Paths
	if m.cfg.Glob != "" {
		var err error
		if files, err = filepath.Glob(m.cfg.Glob); err != nil {
			return m.errorf("%w", err)
		}
		slices.Sort(files)
	}
	if len(files) == 0 && !m.cfg.AllowNone {
		if m.cfg.Glob != "" {
			return m.errorf("no file matches %q", m.cfg.Glob)
		}
		return m.errorf("no files")
	}
	var index int
	restart, err := ec.Get(m.key("index"), &index)
	var sub batch.ExecutionContext
	if err == nil && restart {
		var was struct {
			n    int
			hash string
		}
		err = errors.Join(get(ec, m.key("files"), &was.n), get(ec, m.key("hash"), &was.hash), get(ec, m.key("current"), &sub))
		switch {
		case err != nil:
		case was.n != len(files) || was.hash != listHash(files):
			return m.errorf("%w: the stream had %d files when it started and has %d now, or not the same ones", ErrInputChanged, was.n, len(files))
		case index < 0 || index > len(files):
			err = fmt.Errorf("file index %d out of range", index)
		}
	}
	if err != nil {
		return m.errorf("restore: %w", err)
	}
	m.files, m.index, m.open = files, index, true
	if index < len(files) {
		if err := m.openFile(ctx, sub); err != nil {
			m.open = false
			return err
		}
	}
	return nil
}

// openFile opens the reader of the file at m.index with ec.
func (m *MultiFile[T]) openFile(ctx context.Context, ec batch.ExecutionContext) error {
	path := m.files[m.index]
	r, err := m.cfg.Reader(path)
	if err == nil && r == nil {
		err = errors.New("the Reader func returned nil")
	}
	if err != nil {
		return m.errorf("file %d of %d (%s): %w", m.index+1, len(m.files), path, err)
	}
	if ec == nil {
		ec = batch.ExecutionContext{}
	}
	if err := r.Open(ctx, ec); err != nil {
		return m.errorf("file %d of %d: %w", m.index+1, len(m.files), err)
	}
	m.cur = r
	return nil
}

// Read returns the next item of the current file, going on to the next
// file at the end of one, and io.EOF after the last file. A file whose
// reader cannot open ends the stream: every later Read returns the error,
// and a restart opens that file again.
func (m *MultiFile[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if !m.open {
		return zero, m.errorf("not open")
	}
	if m.err != nil {
		return zero, m.err
	}
	for m.index < len(m.files) {
		item, err := m.cur.Read(ctx)
		if err != io.EOF {
			return item, err // an error of the file's reader names the file
		}
		if err := m.cur.Close(ctx); err != nil {
			return zero, m.errorf("file %d of %d: %w", m.index+1, len(m.files), err)
		}
		m.cur = nil
		m.index++
		if m.index < len(m.files) {
			if err := m.openFile(ctx, nil); err != nil {
				// The stream cannot go on past a file it cannot read: fix
				// the file and restart, and it is opened again.
				m.err = err
				return zero, err
			}
		}
	}
	return zero, io.EOF
}

// Update stores the number of files, the hash of their list, the index of
// the file being read, and the state of that file's reader under the key
// NAME.current.
func (m *MultiFile[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	if !m.open {
		return m.errorf("not open")
	}
	sub := batch.ExecutionContext{}
	if m.cur != nil {
		if err := m.cur.Update(ctx, sub); err != nil {
			return m.errorf("file %d of %d: %w", m.index+1, len(m.files), err)
		}
	}
	err := errors.Join(ec.Put(m.key("files"), len(m.files)), ec.Put(m.key("hash"), listHash(m.files)),
		ec.Put(m.key("index"), m.index), ec.Put(m.key("current"), sub))
	if err != nil {
		return m.errorf("%w", err)
	}
	return nil
}

// Close closes the current file's reader.
func (m *MultiFile[T]) Close(ctx context.Context) error {
	var err error
	if m.cur != nil {
		err = m.cur.Close(ctx)
	}
	*m = MultiFile[T]{cfg: m.cfg}
	if err != nil {
		return m.errorf("close: %w", err)
	}
	return nil
}
