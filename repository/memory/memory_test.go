package memory_test

import (
	"testing"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository/memory"
	"github.com/chunkwise/chunkwise/repository/repotest"
)

func TestConformance(t *testing.T) {
	repotest.Run(t, repotest.Harness{New: func(t *testing.T) batch.JobRepository { return memory.New() }})
}
