package batch_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// A writer that loads each chunk with pgx's CopyFrom inside the chunk's
// transaction, so that the rows commit with the step's checkpoint. (It needs
// a PostgreSQL server, so it is not run here; writer.NewCopy does the same.)
func ExampleJoinRaw() {
	ctx := context.Background()
	repo, err := postgres.Open(ctx, "postgres://app@localhost/app", postgres.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer repo.Close()

	type reading struct {
		Sensor string
		Value  float64
	}
	load := batch.WriterFunc[reading](func(ctx context.Context, items []reading) error {
		return batch.JoinRaw(ctx, repo.DB().DB, func(driverConn any) error {
			conn := driverConn.(*stdlib.Conn).Conn()
			_, err := conn.CopyFrom(ctx, pgx.Identifier{"readings"}, []string{"sensor", "value"},
				pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
					return []any{items[i].Sensor, items[i].Value}, nil
				}))
			return err
		})
	})
	_ = load // the Writer of a batch.ChunkConfig[reading, reading]
}
