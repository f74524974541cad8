// Package processor holds batch.ItemProcessor building blocks. A plain
// function becomes a processor with batch.ProcessorFunc.
//
//   - [Chain], [Chain3] and [Chain4] run processors one after another, the
//     type changing at each stage; [Sequence] runs any number that keep it.
//     An item filtered out or failed by a stage goes no further.
//   - [Filter] drops items by a predicate; [Validate] checks them and fails,
//     skips or filters out those that break a rule ([Invalid]).
//   - [Classify] hands each item to one of several processors by a key.
//   - [ChangeDetector] drops items whose content did not change since they
//     were last written (hashes kept in a table, written in the chunk's
//     transaction), and [DeleteMissing] is the last step of a sync job:
//     it deletes the rows whose items the source no longer returns, and
//     refuses to when the source returned too few.
package processor
