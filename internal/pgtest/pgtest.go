// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the server named by BATCH_TEST_POSTGRES_DSN, else in a container
// started with testcontainers-go when Docker is reachable. Without either the
// test is skipped — or fails, when BATCH_REQUIRE_POSTGRES=1.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // driver
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

var (
	containerOnce sync.Once
	containerDSN  string
	containerErr  error
)

// ServerDSN returns the DSN of the test server, skipping (or failing) t when
// there is none.
func ServerDSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv("BATCH_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	containerOnce.Do(startContainer)
	if containerErr == nil {
		return containerDSN
	}
	msg := "postgres tests need BATCH_TEST_POSTGRES_DSN or a reachable Docker: " + containerErr.Error()
	if os.Getenv("BATCH_REQUIRE_POSTGRES") == "1" {
		t.Fatal(msg + " (BATCH_REQUIRE_POSTGRES=1)")
	}
	t.Skip(msg)
	return ""
}

func startContainer() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			containerErr = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "postgres:16-alpine",
			ExposedPorts: []string{"5432/tcp"},
			Env:          map[string]string{"POSTGRES_PASSWORD": "postgres", "POSTGRES_DB": "test"},
			WaitingFor:   wait.ForListeningPort("5432/tcp").WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	if err != nil {
		containerErr = err
		return
	}
	host, err := c.Host(ctx)
	if err != nil {
		containerErr = err
		return
	}
	port, err := c.MappedPort(ctx, "5432/tcp")
	if err != nil {
		containerErr = err
		return
	}
	containerDSN = fmt.Sprintf("postgres://postgres:postgres@%s:%s/test?sslmode=disable", host, port.Port())
}

// DSN returns a DSN whose search_path is a new, empty schema that is dropped
// when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	server := ServerDSN(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "cw_test_" + hex.EncodeToString(b)
	admin, err := sqlx.Open("postgres", server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sqlx.Open("postgres", server)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	return WithSearchPath(server, schema)
}

// WithSearchPath returns dsn with its search_path set to schema.
func WithSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

// DB opens a database on a fresh schema (see DSN), closed when the test ends.
func DB(t testing.TB) (*sqlx.DB, string) {
	t.Helper()
	dsn := DSN(t)
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dsn
}
