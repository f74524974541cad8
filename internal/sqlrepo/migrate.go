package sqlrepo

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads the files NNN_name.sql of dir in fsys, in version order.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and '_'", name)
		}
		b, err := fs.ReadFile(fsys, dir+"/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies the migrations not yet applied, each in its own
// transaction, recording them in the table <prefix>schema_migration. lock,
// when not empty, is run first in each transaction to serialize concurrent
// migrations (PostgreSQL: an advisory lock). It returns the versions it
// applied; running it again applies nothing.
func Migrate(ctx context.Context, db *sqlx.DB, d Dialect, prefix, lock string, ms []Migration) ([]int, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	table := prefix + "schema_migration"
	var applied []int
	for _, m := range ms {
		err := func() error {
			tx, err := db.BeginTxx(ctx, d.TxOptions)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback() }()
			if lock != "" {
				if _, err := tx.ExecContext(ctx, lock); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+
				` (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)`); err != nil {
				return err
			}
			var n int
			if err := tx.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE version = ?`), m.Version); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, strings.ReplaceAll(m.SQL, "{{prefix}}", prefix)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO `+table+` (version, name, applied_at) VALUES (?, ?, ?)`),
				m.Version, m.Name, time.Now().UTC()); err != nil {
				return err
			}
			applied = append(applied, m.Version)
			return tx.Commit()
		}()
		if err != nil {
			return applied, fmt.Errorf("repository %s: migration %s: %w", d.Name, m.Name, err)
		}
	}
	return applied, nil
}

// Pending returns the migrations of ms not yet applied to the database,
// without changing anything: for programs that must not migrate on their
// own (read-only commands, least-privilege deployments).
func Pending(ctx context.Context, db *sqlx.DB, d Dialect, prefix string, ms []Migration) ([]Migration, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	table := prefix + "schema_migration"
	var n int
	if err := db.GetContext(ctx, &n, db.Rebind(d.TableExists), table); err != nil {
		return nil, fmt.Errorf("repository %s: schema version: %w", d.Name, err)
	}
	applied := map[int]bool{}
	if n > 0 {
		var versions []int
		if err := db.SelectContext(ctx, &versions, `SELECT version FROM `+table); err != nil {
			return nil, fmt.Errorf("repository %s: schema version: %w", d.Name, err)
		}
		for _, v := range versions {
			applied[v] = true
		}
	}
	var out []Migration
	for _, m := range ms {
		if !applied[m.Version] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Names returns the names of migrations.
func Names(ms []Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}
