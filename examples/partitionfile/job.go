package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

const jobName = "partitionfile"

// increase is what the job adds to every credit: Spring Batch's
// CustomerCreditIncreaseProcessor.FIXED_AMOUNT.
const increase = 5

// sampleDir is the directory of the bundled sample, in sample and under
// the output directory.
const sampleDir = "sample"

//go:embed sample/*.csv
var sample embed.FS

// customer is a line of an input file and of its output file.
type customer struct {
	Name   string
	Credit credit

	file string // the input file, for messages
	line int64  // the line in it
}

var parameters = []batch.ParamSpec{
	{Name: "input", Description: "a glob of the input files; the bundled sample when not given"},
	{Name: "output", Default: "partition-output", Description: "the directory of the output files"},
	{Name: "chunk", Type: batch.ParamInt, Default: "100", NonIdentifying: true,
		Description: "lines per transaction, 1 to 100000"},
	{Name: "concurrency", Type: batch.ParamInt, Default: "0", NonIdentifying: true,
		Description: "partitions that run at once; 0 for all of them, up to 16"},
}

func newJob(env launcher.Env) (batch.JobConfig, error) {
	output, _ := env.Parameters.String("output")
	if output == "" {
		return batch.JobConfig{}, errors.New("parameter output: empty")
	}
	chunk, _ := env.Parameters.Int("chunk")
	if chunk < 1 || chunk > 100_000 {
		return batch.JobConfig{}, fmt.Errorf("parameter chunk=%d: want 1 to 100000", chunk)
	}
	concurrency, _ := env.Parameters.Int("concurrency")
	if concurrency < 0 || concurrency > 1000 {
		return batch.JobConfig{}, fmt.Errorf("parameter concurrency=%d: want 0 to 1000", concurrency)
	}
	glob, given := env.Parameters.String("input")
	if !given {
		glob = filepath.Join(globQuote(output), sampleDir, "*.csv")
	}

	prepare, err := batch.NewTaskletStep("prepare", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
			if err := os.MkdirAll(output, 0o755); err != nil {
				return batch.Finished, err
			}
			if given {
				return batch.Finished, nil
			}
			return batch.Finished, writeSample(filepath.Join(output, sampleDir))
		})})
	if err != nil {
		return batch.JobConfig{}, err
	}
	files, err := inputFiles(glob, output)
	if err != nil {
		return batch.JobConfig{}, err
	}
	process := increaseCredit(os.Getenv("FAIL_AT"))
	step, err := batch.NewPartitionStep("credit", batch.PartitionConfig{
		Partitioner: files,
		Concurrency: int(concurrency),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			return partitionStep(name, p, output, int(chunk), process)
		},
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{prepare, step}}, nil
}

// partitionStep returns the step of one partition: it reads the
// partition's file and writes its customers, their credit increased, to
// the file of the same name in the output directory.
func partitionStep(name string, p batch.Partition, output string, chunk int,
	process batch.ProcessorFunc[customer, customer]) (batch.Step, error) {
	in, ok := p.Context.String(reader.PartitionPath)
	if !ok {
		return nil, fmt.Errorf("partition %s: no %q in its context", p.Name, reader.PartitionPath)
	}
	// A bad line may be fixed in the file before a restart: a change after
	// the checkpoint is accepted, one before it refuses the restart.
	r, err := reader.NewCSV(reader.CSVConfig[customer]{
		Name: in, Path: in, Map: mapCustomer, InputCheck: reader.ChangedAfterCheckpoint,
	})
	if err != nil {
		return nil, err
	}
	w, err := writer.NewCSVFile(writer.CSVFileConfig[customer]{
		Path: outputPath(output, in),
		Fields: func(c customer) ([]string, error) {
			return []string{c.Name, c.Credit.String()}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return batch.NewChunkStep(name, batch.ChunkConfig[customer, customer]{
		Reader: r, Processor: process, Writer: w, ChunkSize: chunk,
	})
}

// mapCustomer turns a line name,credit into a customer. Its errors become
// a *reader.ParseError naming the file and the line.
func mapCustomer(rec reader.Record) (customer, error) {
	if len(rec.Fields) != 2 {
		return customer{}, fmt.Errorf("%d fields, want 2 (name,credit)", len(rec.Fields))
	}
	name := strings.TrimSpace(rec.Fields[0])
	if name == "" {
		return customer{}, errors.New("empty name")
	}
	c, err := parseCredit(strings.TrimSpace(rec.Fields[1]))
	if err != nil {
		return customer{}, err
	}
	return customer{Name: name, Credit: c, file: rec.File, line: rec.Line}, nil
}

// increaseCredit returns the processor that adds increase to a customer's
// credit, and fails on purpose at the customer named failAt, if any.
func increaseCredit(failAt string) batch.ProcessorFunc[customer, customer] {
	return func(_ context.Context, c customer) (customer, error) {
		if failAt != "" && c.Name == failAt {
			return c, fmt.Errorf("FAIL_AT=%s: failing on purpose at %s line %d", failAt, c.file, c.line)
		}
		c.Credit = c.Credit.plus(increase)
		return c, nil
	}
}

// outputPath is the output file of the input file in: the file of the same
// name in the output directory.
func outputPath(output, in string) string {
	return filepath.Join(output, filepath.Base(in))
}

// inputFiles returns the partitioner of the job: one partition per file of
// the glob (reader.Files, which passes directories over), refusing inputs
// that would write the same output file and an input that is its own
// output — before anything runs.
func inputFiles(glob, output string) (batch.Partitioner, error) {
	files, err := reader.Files(glob)
	if err != nil {
		return nil, err
	}
	return batch.PartitionerFunc(func(ctx context.Context) ([]batch.Partition, error) {
		parts, err := files.Partitions(ctx)
		if err != nil {
			return nil, err
		}
		byOutput := map[string]string{}
		for _, p := range parts {
			in, _ := p.Context.String(reader.PartitionPath)
			out := outputPath(output, in)
			if other, ok := byOutput[out]; ok {
				return nil, fmt.Errorf("inputs %s and %s would both be written to %s", other, in, out)
			}
			byOutput[out] = in
			fi, err := os.Stat(in)
			if err != nil {
				return nil, fmt.Errorf("input %s: %w", in, err)
			}
			if fo, err := os.Stat(out); err == nil && os.SameFile(fi, fo) {
				return nil, fmt.Errorf("input %s would be overwritten by its output: choose another output directory", in)
			}
		}
		return parts, nil
	}), nil
}

// writeSample writes the bundled sample files to dir, leaving those that
// are already there with the same content. A file is written under a
// temporary name and renamed, so that it is whole or absent.
func writeSample(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, err := fs.Glob(sample, sampleDir+"/*.csv")
	if err != nil {
		return err
	}
	for _, name := range names {
		data, err := sample.ReadFile(name)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, path.Base(name))
		if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, data) {
			continue
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return fmt.Errorf("sample %s: %w", dst, err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("sample %s: %w", dst, err)
		}
	}
	return nil
}

// globQuote quotes the characters of a path that filepath.Glob takes for
// patterns, so that the path matches only itself.
func globQuote(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch {
		case r == '*' || r == '?' || r == '[':
			b.WriteString("[" + string(r) + "]")
		case r == '\\' && filepath.Separator != '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
