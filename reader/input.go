package reader

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// InputCheck says which changes of a file a restart accepts. A restartable
// file reader records, with every checkpoint, the file's size and hashes of
// its first bytes and of the bytes just before the checkpoint, and checks
// them when it resumes: a file that was replaced, truncated, or had lines
// added or removed before the checkpoint is refused with [ErrInputChanged]
// instead of being read from a position that no longer means the same.
//
// What is checked is cheap and sound for the changes that happen to files
// between runs, but it is not a hash of everything before the checkpoint: a
// change in the middle of the committed part of a file that keeps its size,
// its first and its last 4 KiB before the checkpoint is not seen. The
// modification time is not looked at: a file copied again with the same
// bytes is the same input.
type InputCheck int

const (
	// SameInput, the default, accepts only the same input: the same size,
	// and the same bytes at its start and just before the checkpoint.
	SameInput InputCheck = iota
	// Appended accepts as well an input that only grew since the
	// checkpoint: an append-only file.
	Appended
	// ChangedAfterCheckpoint accepts any change after the checkpoint, as
	// long as the part already committed is the same: a bad record fixed
	// where the step failed, or data appended.
	ChangedAfterCheckpoint
)

// ErrInputChanged is matched by the error of a restart whose input is not
// the one the checkpoint was taken on.
var ErrInputChanged = errors.New("input changed since the last commit")

// identityWindow is how many bytes at the start of the input, and before the
// checkpoint, are hashed.
const identityWindow = 4096

// inputIdentity is what is stored of the input with a checkpoint.
type inputIdentity struct {
	Size int64  `json:"size"` // the input's size when the reader opened it
	Head string `json:"head"` // hash of the bytes [0, min(offset, window))
	Tail string `json:"tail"` // hash of the bytes [max(0, offset-window), offset)
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// history keeps what an input is known to hold: its size, its first bytes,
// and the last bytes read, so that a checkpoint's identity can be taken
// without reading the input again.
type history struct {
	size int64
	head []byte
	ring []byte // the last len(ring) bytes read, in a circle
	end  int64  // offset just after the last byte read
	// pin is the reader's restart position, and pinned the bytes before it
	// once the ring no longer holds them: a reader may read far past its
	// position (records it skips, a look-ahead) before a checkpoint asks
	// for the identity at that position.
	pin    int64
	pinned []byte
}

func newHistory(size int64) *history {
	return &history{size: size, ring: make([]byte, bufferSize+2*identityWindow)}
}

// setPin notes the reader's restart position.
func (h *history) setPin(offset int64) {
	if offset != h.pin {
		h.pin, h.pinned = offset, nil
	}
}

// add records p, read at the offset h.end.
func (h *history) add(p []byte) {
	if lo := max(0, h.pin-identityWindow); h.pinned == nil && h.end >= h.pin &&
		h.end+int64(len(p)) > lo+int64(len(h.ring)) {
		// The ring is about to lose bytes before the position: keep them.
		h.pinned, _ = h.window(lo, h.pin)
	}
	// The start is kept as far as it was read without a gap.
	if hl := int64(len(h.head)); hl < identityWindow && h.end <= hl && hl < h.end+int64(len(p)) {
		k := hl - h.end
		n := min(int64(len(p))-k, identityWindow-hl)
		h.head = append(h.head, p[k:k+n]...)
	}
	for len(p) > 0 {
		i := int(h.end % int64(len(h.ring)))
		n := copy(h.ring[i:], p)
		p = p[n:]
		h.end += int64(n)
	}
}

// window returns the bytes [from, to), which must be among the last read.
func (h *history) window(from, to int64) ([]byte, bool) {
	if from < h.end-int64(len(h.ring)) || to > h.end || from > to {
		return nil, false
	}
	out := make([]byte, 0, to-from)
	for off := from; off < to; {
		i := int(off % int64(len(h.ring)))
		n := min(int64(len(h.ring)-i), to-off)
		out = append(out, h.ring[i:int64(i)+n]...)
		off += n
	}
	return out, true
}

// identity returns the identity of the input at a checkpoint at offset.
func (h *history) identity(offset int64) (inputIdentity, error) {
	tail, ok := h.window(max(0, offset-identityWindow), offset)
	if !ok && offset == h.pin && h.pinned != nil {
		tail, ok = h.pinned, true
	}
	if !ok {
		return inputIdentity{}, fmt.Errorf("checkpoint at byte %d is not among the bytes last read", offset)
	}
	if offset < identityWindow && int64(len(h.head)) < offset {
		return inputIdentity{}, fmt.Errorf("checkpoint at byte %d is past the bytes known of the start", offset)
	}
	return inputIdentity{Size: h.size, Head: hashOf(h.head[:min(offset, int64(len(h.head)))]), Tail: hashOf(tail)}, nil
}

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// input is an open input of a file reader: the bytes of the file,
// decompressed when it is gzip, with the history of what was read. Read
// reads from the position that open or resume left it at.
type input struct {
	f     io.ReadSeekCloser
	gz    *gzip.Reader // nil when the file is not compressed
	plain io.Reader    // the file's bytes from the position, when not compressed
	hist  *history
	pos   int64 // offset of the next byte, in the (decompressed) stream
}

// openInput opens a file reader's input: the file at path, or what open
// returns. A file that starts with the gzip magic bytes is decompressed.
func openInput(path string, open func() (io.ReadSeekCloser, error)) (*input, error) {
	var (
		f   io.ReadSeekCloser
		err error
	)
	if open != nil {
		if f, err = open(); err == nil && f == nil {
			err = errors.New("open returned a nil reader")
		}
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
	} else if f, err = os.Open(path); err != nil {
		return nil, err
	}
	in := &input{f: f}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("size: %w", err)
	}
	in.hist = newHistory(size)
	magic := make([]byte, len(gzipMagic))
	n, _ := io.ReadFull(f, magic)
	if n < len(magic) || !bytes.Equal(magic, gzipMagic) {
		// The bytes read to look are the first of the input.
		in.plain = io.MultiReader(bytes.NewReader(magic[:n]), f)
		return in, nil
	}
	if _, err = f.Seek(0, io.SeekStart); err == nil {
		in.gz, err = gzip.NewReader(bufio.NewReaderSize(f, bufferSize))
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return in, nil
}

// Read reads the next bytes of the input, recording them in its history.
func (in *input) Read(p []byte) (int, error) {
	n, err := in.raw().Read(p)
	in.hist.add(p[:n])
	in.pos += int64(n)
	if err != nil && err != io.EOF && in.gz != nil {
		err = fmt.Errorf("gzip: %w", err)
	}
	return n, err
}

func (in *input) raw() io.Reader {
	if in.gz != nil {
		return in.gz
	}
	return in.plain
}

// Close closes the input.
func (in *input) Close() error {
	if in.gz != nil {
		_ = in.gz.Close()
	}
	return in.f.Close()
}

// resume checks that the input is the one a checkpoint at offset was taken
// on, as check allows, and leaves it at offset with its history knowing the
// bytes before it. A plain file is positioned by seeking; a compressed one
// is decompressed again from its start up to offset. The error wraps
// ErrInputChanged and says what changed. With was nil (a checkpoint stored
// without the input's identity) nothing is compared.
func (in *input) resume(offset int64, was *inputIdentity, check InputCheck) error {
	h := in.hist
	if in.gz == nil && h.size < offset {
		return fmt.Errorf("%w: it is %d bytes, shorter than the %d bytes already committed", ErrInputChanged, h.size, offset)
	}
	shorter := func(err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: it decompresses to fewer than the %d bytes already committed", ErrInputChanged, offset)
		}
		return err
	}
	head := make([]byte, min(offset, identityWindow))
	if _, err := io.ReadFull(in.raw(), head); err != nil {
		return fmt.Errorf("read its start: %w", shorter(err))
	}
	if was != nil && hashOf(head) != was.Head {
		return fmt.Errorf("%w: its first %d bytes differ (lines added, removed or changed at the start, or another file)",
			ErrInputChanged, len(head))
	}
	from := max(0, offset-identityWindow)
	tail := make([]byte, 0, offset-from)
	switch {
	case in.gz == nil:
		if _, err := in.f.Seek(from, io.SeekStart); err != nil {
			return fmt.Errorf("seek to byte %d: %w", from, err)
		}
		in.plain = in.f
	case from >= int64(len(head)):
		if _, err := io.CopyN(io.Discard, in.gz, from-int64(len(head))); err != nil {
			return fmt.Errorf("decompress up to byte %d: %w", from, shorter(err))
		}
	default:
		tail = append(tail, head[from:]...)
	}
	rest := tail[len(tail) : offset-from]
	if _, err := io.ReadFull(in.raw(), rest); err != nil {
		return fmt.Errorf("read up to byte %d: %w", offset, shorter(err))
	}
	tail = tail[:offset-from]
	if was != nil && hashOf(tail) != was.Tail {
		return fmt.Errorf("%w: the %d bytes before the restart point (byte %d) differ", ErrInputChanged, len(tail), offset)
	}
	h.end = from
	h.head = head
	h.setPin(offset)
	h.add(tail)
	in.pos = offset
	switch {
	case was == nil || h.size == was.Size:
	case check == ChangedAfterCheckpoint:
	case check == Appended && h.size > was.Size:
	case h.size > was.Size:
		return fmt.Errorf("%w: it grew from %d to %d bytes after the restart point (an append-only input is accepted with InputCheck Appended)",
			ErrInputChanged, was.Size, h.size)
	default:
		return fmt.Errorf("%w: it was %d bytes and is %d, changed after the restart point (InputCheck ChangedAfterCheckpoint accepts that)",
			ErrInputChanged, was.Size, h.size)
	}
	return nil
}
