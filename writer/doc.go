// Package writer holds batch.ItemWriter implementations.
//
//   - SQL inserts each chunk into a table in one statement (several for very
//     large chunks), inside the chunk's transaction when its *sqlx.DB is the
//     job repository's: rows and checkpoint commit together, so a restart
//     writes every item exactly once.
//   - Slice collects items in memory and Func adapts a function: for tests and
//     small programs.
//
// What each writer guarantees after a crash is stated on its type and in
// docs/guarantees.md.
package writer
