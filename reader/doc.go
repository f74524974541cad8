// Package reader holds [batch.ItemReader] implementations: the sources a
// chunk step reads its items from. Each restartable reader implements
// [batch.ItemStream]: it stores its position in the step's
// [batch.ExecutionContext] at every commit, under keys prefixed by its name,
// and a restarted step resumes right after the last committed item.
//
// Files:
//
//   - [CSV] reads a delimited file record by record and turns each [Record]
//     into an item with a Map function, written by hand with the typed
//     helpers of [Record] ([Record.Int], [Record.Time], ...) or built from
//     struct tags by [MapStruct]; lines before the header and trailer
//     records at the end are given to callbacks.
//   - [FixedWidth] reads lines whose fields sit in fixed columns, with
//     header and footer (trailer) lines and their callbacks; it gives
//     [Record]s too.
//   - [JSONLines] decodes one JSON value per line; [JSONArray] decodes the
//     elements of one large JSON array one at a time, in constant memory.
//   - [MultiFile] reads a list or a glob of files as one stream, resuming
//     in the right file.
//
// The file readers store the byte offset and line after the last item they
// returned, and a restart seeks there instead of reading the file again. A
// file that starts with the gzip magic bytes is decompressed as it is read;
// a restart decompresses it again from its start up to the stored offset.
// A restart checks that the input is the one the checkpoint was taken on
// (see [InputCheck]): a file replaced, truncated or with lines added before
// the checkpoint fails Open with [ErrInputChanged] instead of being read
// from a position that no longer means the same. Bad input comes back as a
// [*ParseError] naming the file and line; where it concerns one record, the
// next Read goes on with the next one, so that a skip policy can skip it. A
// line or record longer than its configured maximum is an error, never a
// reason to run out of memory.
//
// Databases: [Keyset] pages through a table by a unique key and resumes
// after the last committed key; [Cursor] streams one query and resumes by
// skipping the committed count. HTTP: [HTTP] reads the items of a paginated
// JSON API, retrying what is worth retrying, and resumes at the page of the
// next uncommitted item.
//
// Adapters: [FromSlice] and [FromSeq] / [FromSeq2] (iterators) are
// restartable; [FromChannel] is not. batch.ReaderFunc adapts a function.
//
// Partitioners for batch.NewPartitionStep: [KeyRanges] splits a table by
// an integer key, in equal spans or at quantiles, and [RangeWhere] makes a
// partition's condition for its reader; [Files] makes one partition per
// file of a glob; [CSVRanges] cuts one CSV file into byte ranges that start
// at records, and [CSVRangeOf] gives a partition's [CSVConfig.Range].
//
// Readers are not safe for concurrent use: a step reads from one goroutine.
package reader
