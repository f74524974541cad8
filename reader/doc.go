// Package reader holds [batch.ItemReader] implementations: the sources a
// chunk step reads its items from.
//
// [CSV] reads a delimited file (comma, semicolon, tab, ...) record by record
// and turns each [Record] into an item with a Map function, either written by
// hand with the typed helpers of [Record] ([Record.Int], [Record.Time], ...)
// or built from struct tags by [MapStruct]. It is restartable: it implements
// [batch.ItemStream] and stores in the step's [batch.ExecutionContext] the
// byte offset and line just after the last record it returned, so that a
// restarted step seeks there instead of reading the file again from the
// start. Errors in the input come back as [*ParseError], naming the file and
// the line.
//
// A restart checks that the input is the one the checkpoint was taken on
// (see [InputCheck]): a file replaced, truncated or with lines added before
// the checkpoint fails Open with [ErrInputChanged] instead of being read
// from a position that no longer means the same.
//
// [FromSlice] adapts a slice, and is restartable too; batch.ReaderFunc
// adapts a function.
//
// Readers are not safe for concurrent use: a step reads from one goroutine.
package reader
