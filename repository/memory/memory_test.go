package memory_test

import (
	"testing"

	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
	"github.com/chunkwise/chunkwise/repository/repotest"
)

func TestConformance(t *testing.T) {
	repotest.Run(t, repotest.Harness{New: func(t *testing.T) repository.JobRepository { return memory.New() }})
}
