// Package writer holds batch.ItemWriter implementations.
//
//   - SQL: [SQL] (multi-row INSERT), [Upsert] (INSERT … ON CONFLICT, rows
//     left alone when unchanged), [Update] and [Delete] by key, [Named] (any
//     statement with :field parameters) and [Copy] (PostgreSQL COPY: pgx's
//     binary CopyFrom, or lib/pq's text COPY). They join the chunk's
//     transaction when their *sqlx.DB is the job repository's, so that
//     rows and checkpoint commit together and a restart writes every item
//     exactly once; their statements are prepared once per step
//     execution; they report rows inserted, updated, unchanged and deleted
//     with batch.ReportChanges.
//   - Files: [CSVFile], [FixedWidthFile], [JSONLinesFile] and
//     [JSONArrayFile] write each chunk in the chunk's commit at the offset
//     stored with the last checkpoint, with header and footer callbacks: a
//     file written across crashes holds every item once, and is complete
//     after every commit.
//   - [Composite] writes each chunk to several writers; [Route] sends each
//     item to the writer its key selects.
//   - [RejectFile] and [RejectTable] are skip listeners that record the
//     skipped items with their errors.
//   - [Slice] collects items in memory, for tests; batch.WriterFunc adapts
//     a function.
//
// What each writer guarantees after a crash is stated on its type and in
// docs/readers-writers.md.
package writer
