package reader_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// lines returns a CSV with a header and rows from..to.
func lines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d,row %d\n", i, i)
	}
	return b.String()
}

// checkpoint reads n rows of the file at path and returns the context a
// commit would store.
func checkpoint(t *testing.T, cfg reader.CSVConfig[row], n int) batch.ExecutionContext {
	t.Helper()
	r, err := reader.NewCSV(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
	for range n {
		_, err := r.Read(t.Context())
		require.NoError(t, err)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, r.Update(t.Context(), ec))
	require.NoError(t, r.Close(t.Context()))
	return roundTrip(t, ec)
}

// TestRestartOnChangedInput: a restart on a file that is not the one the
// checkpoint was taken on is refused, saying the input changed — whatever
// the change, and wherever the checkpoint falls.
func TestRestartOnChangedInput(t *testing.T) {
	original := "id,name\n" + lines(1, 2000)
	for name, tt := range map[string]struct {
		changed string
		check   reader.InputCheck
		reason  string // "" when the restart is accepted
	}{
		"truncated below the checkpoint":   {changed: original[:4000], reason: "shorter than the"},
		"ten lines inserted at the top":    {changed: "id,name\n" + lines(-9, 0) + lines(1, 2000), reason: "first 4096 bytes differ"},
		"three lines prepended":            {changed: "x,y\nx,y\nx,y\n" + original, reason: "first 4096 bytes differ"},
		"a replacement of the same shape":  {changed: strings.ReplaceAll(original, "row", "wor"), reason: "first 4096 bytes differ"},
		"changed just before the restart":  {changed: strings.Replace(original, "1499,row 1499", "1499,row 9999", 1), reason: "bytes before the restart point"},
		"lines appended":                   {changed: original + lines(2001, 2100), reason: "grew from"},
		"lines appended, Appended":         {changed: original + lines(2001, 2100), check: reader.Appended},
		"fixed after the checkpoint":       {changed: strings.Replace(original, "1800,row 1800", "1800,fixed", 1), reason: "changed after the restart point"},
		"fixed after, ChangedAfter":        {changed: strings.Replace(original, "1800,row 1800", "1800,fixed", 1), check: reader.ChangedAfterCheckpoint},
		"shrunk after, Appended":           {changed: original[:len(original)-20], check: reader.Appended, reason: "changed after the restart point"},
		"copied again with the same bytes": {changed: original},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "people.csv")
			require.NoError(t, os.WriteFile(path, []byte(original), 0o600))
			cfg := reader.CSVConfig[row]{Path: path, Header: true, Map: toRow, InputCheck: tt.check}
			ec := checkpoint(t, cfg, 1500)

			require.NoError(t, os.Remove(path))
			require.NoError(t, os.WriteFile(path, []byte(tt.changed), 0o600))
			r, err := reader.NewCSV(cfg)
			require.NoError(t, err)
			err = r.Open(t.Context(), ec)
			if tt.reason == "" {
				require.NoError(t, err)
				rest := readAll(t, r)
				require.NoError(t, r.Close(t.Context()))
				require.Equal(t, []string{"1501", "row 1501"}, rest[0].Fields)
				return
			}
			require.ErrorIs(t, err, reader.ErrInputChanged)
			require.ErrorContains(t, err, "reader: csv people.csv: restart at line 1502")
			require.ErrorContains(t, err, tt.reason)
		})
	}
}

// TestRestartCheckAtEveryCheckpoint: the identity is right wherever the
// checkpoint falls: in the first 4 KiB, at the end, after a restart.
func TestRestartCheckAtEveryCheckpoint(t *testing.T) {
	t.Parallel()
	content := "id,name\n" + lines(1, 600)
	path := filepath.Join(t.TempDir(), "people.csv")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	cfg := reader.CSVConfig[row]{Path: path, Header: true, Map: toRow}
	ec := batch.ExecutionContext{}
	read := 0
	for read < 600 {
		r, err := reader.NewCSV(cfg)
		require.NoError(t, err)
		require.NoError(t, r.Open(t.Context(), ec), "restart after %d rows", read)
		for range 37 {
			if read == 600 {
				break
			}
			it, err := r.Read(t.Context())
			require.NoError(t, err)
			read++
			require.Equal(t, fmt.Sprint(read), it.Fields[0])
			ec = batch.ExecutionContext{}
			require.NoError(t, r.Update(t.Context(), ec))
		}
		require.NoError(t, r.Close(t.Context()))
		ec = roundTrip(t, ec)
	}
}
