// Package processor holds batch.ItemProcessor building blocks: Chain joins two
// processors, Filter drops items by a predicate, Validate fails items that
// break a rule. A plain function becomes a processor with
// batch.ProcessorFunc.
package processor
