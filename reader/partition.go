package reader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// Keys of the partitions that [KeyRanges] and [Files] make.
const (
	PartitionFrom  = "from"  // the first key of a range (int64)
	PartitionBelow = "below" // the key a range stops before (int64); absent in the last range
	PartitionPath  = "path"  // the file of a partition
)

// KeyRangeConfig configures [KeyRanges].
type KeyRangeConfig struct {
	// DB is the database of the table. Required.
	DB *sqlx.DB
	// From is the table (or what follows FROM), SQL written by the
	// program. Required.
	From string
	// Column is the integer key column to split on. Required.
	Column string
	// Where filters the rows, with ? placeholders for Args, as in
	// [KeysetConfig.Where]. Default: every row.
	Where string
	Args  []any
	// Partitions is how many ranges to make, at most. Required.
	Partitions int
	// Quantiles puts the boundaries at the keys that split the rows into
	// equal counts, so that skewed keys still split evenly (one query per
	// boundary). Default false: the range from the smallest to the largest
	// key is cut into equal spans.
	Quantiles bool
}

// KeyRanges returns a partitioner that splits the rows of a table into
// ranges of an integer key: partition "pN" holds the keys from
// PartitionFrom up to, not including, PartitionBelow (the last range has
// no upper bound, so that rows added at the end during the run are read
// too). [RangeWhere] turns a partition into a condition for a reader. A
// table with no rows gives no partitions, and one with fewer distinct keys
// than Partitions fewer ranges; with equal spans, a range may hold no row.
func KeyRanges(cfg KeyRangeConfig) (batch.Partitioner, error) {
	switch {
	case cfg.DB == nil || cfg.From == "":
		return nil, errors.New("reader: key ranges: DB and From are required")
	case !sqlName.MatchString(cfg.Column):
		return nil, fmt.Errorf("reader: key ranges: invalid column %q", cfg.Column)
	case cfg.Partitions < 1:
		return nil, fmt.Errorf("reader: key ranges: Partitions %d, want 1 or more", cfg.Partitions)
	}
	where := ""
	if cfg.Where != "" {
		where = " WHERE (" + cfg.Where + ")"
	}
	minMax := cfg.DB.Rebind(`SELECT MIN(` + cfg.Column + `), MAX(` + cfg.Column + `), COUNT(*) FROM ` + cfg.From + where)
	nth := cfg.DB.Rebind(`SELECT ` + cfg.Column + ` FROM ` + cfg.From + where + ` ORDER BY ` + cfg.Column + ` LIMIT 1 OFFSET ?`)
	return batch.PartitionerFunc(func(ctx context.Context) ([]batch.Partition, error) {
		var lo, hi sql.NullInt64
		var rows int64
		if err := cfg.DB.QueryRowxContext(ctx, minMax, cfg.Args...).Scan(&lo, &hi, &rows); err != nil {
			return nil, fmt.Errorf("reader: key ranges %s.%s: %w", cfg.From, cfg.Column, err)
		}
		if !lo.Valid || rows == 0 {
			return []batch.Partition{}, nil
		}
		n := int64(cfg.Partitions)
		bounds := []int64{lo.Int64}
		for i := int64(1); i < n; i++ {
			var b int64
			if cfg.Quantiles {
				if err := cfg.DB.QueryRowxContext(ctx, nth, append(slices.Clone(cfg.Args), i*rows/n)...).Scan(&b); err != nil {
					return nil, fmt.Errorf("reader: key ranges %s.%s: boundary %d: %w", cfg.From, cfg.Column, i, err)
				}
			} else {
				b = lo.Int64 + (hi.Int64-lo.Int64+1)*i/n
			}
			if b > bounds[len(bounds)-1] {
				bounds = append(bounds, b)
			}
		}
		parts := make([]batch.Partition, 0, len(bounds))
		for i, from := range bounds {
			ec := batch.ExecutionContext{}
			err := ec.Put(PartitionFrom, from)
			if i+1 < len(bounds) {
				err = errors.Join(err, ec.Put(PartitionBelow, bounds[i+1]))
			}
			if err != nil {
				return nil, err
			}
			parts = append(parts, batch.Partition{Name: fmt.Sprintf("p%d", i+1), Context: ec})
		}
		return parts, nil
	}), nil
}

// RangeWhere returns the condition and arguments that select the keys of a
// partition made by [KeyRanges]: "column >= ? AND column < ?", or
// "column >= ?" for the last range.
func RangeWhere(column string, p batch.Partition) (string, []any, error) {
	if !sqlName.MatchString(column) {
		return "", nil, fmt.Errorf("reader: range where: invalid column %q", column)
	}
	from, ok := p.Context.Int64(PartitionFrom)
	if !ok {
		return "", nil, fmt.Errorf("reader: range where: partition %s has no %q", p.Name, PartitionFrom)
	}
	if below, ok := p.Context.Int64(PartitionBelow); ok {
		return column + " >= ? AND " + column + " < ?", []any{from, below}, nil
	}
	return column + " >= ?", []any{from}, nil
}

// Files returns a partitioner that makes one partition per file matching
// the pattern, in the order of their names: partition "fN" has the file's
// path under PartitionPath. Directories and other files that are not
// regular ones (devices, sockets) are passed over; a match that cannot be
// looked at is an error naming it, and so is no file at all.
func Files(glob string) (batch.Partitioner, error) {
	if _, err := filepath.Match(glob, ""); err != nil {
		return nil, fmt.Errorf("reader: files %q: %w", glob, err)
	}
	return batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
		files, err := filepath.Glob(glob)
		if err != nil {
			return nil, fmt.Errorf("reader: files %q: %w", glob, err)
		}
		files = slices.DeleteFunc(files, func(f string) bool {
			fi, serr := os.Stat(f)
			if serr != nil && err == nil {
				err = fmt.Errorf("reader: files %q: %w", glob, serr)
			}
			return serr != nil || !fi.Mode().IsRegular()
		})
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("reader: files: no file matches %q", glob)
		}
		slices.Sort(files)
		parts := make([]batch.Partition, 0, len(files))
		for i, f := range files {
			ec := batch.ExecutionContext{}
			if err := ec.Put(PartitionPath, f); err != nil {
				return nil, err
			}
			parts = append(parts, batch.Partition{Name: fmt.Sprintf("f%d", i+1), Context: ec})
		}
		return parts, nil
	}), nil
}
