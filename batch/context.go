package batch

import (
	"encoding/json"
	"fmt"
	"maps"
)

// ExecutionContext is the restart state of a job or a step: a map from keys to
// JSON values. Readers and writers that implement [ItemStream] store their
// position here at every commit and read it back when a restarted step opens
// them. Values are kept as raw JSON so that what is read back after a restart
// is exactly what was written, whatever the store.
//
// Components should prefix their keys with their own name ("people.csv.offset")
// so that a reader and a writer of one step do not collide.
type ExecutionContext map[string]json.RawMessage

// Put stores v, encoded as JSON, under key.
func (c ExecutionContext) Put(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("batch: execution context key %q: %w", key, err)
	}
	c[key] = b
	return nil
}

// Get decodes the value stored under key into v. It reports whether the key
// was present.
func (c ExecutionContext) Get(key string, v any) (bool, error) {
	b, ok := c[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("batch: execution context key %q: %w", key, err)
	}
	return true, nil
}

// Int64 returns the integer stored under key, or 0 and false when the key is
// absent or does not hold an integer.
func (c ExecutionContext) Int64(key string) (int64, bool) {
	var v int64
	ok, err := c.Get(key, &v)
	return v, ok && err == nil
}

// String returns the string stored under key, or "" and false when the key is
// absent or does not hold a string.
func (c ExecutionContext) String(key string) (string, bool) {
	var v string
	ok, err := c.Get(key, &v)
	return v, ok && err == nil
}

// Clone returns a copy of c that shares no map with it. The raw values are
// never modified in place, so they are shared.
func (c ExecutionContext) Clone() ExecutionContext {
	if c == nil {
		return ExecutionContext{}
	}
	return maps.Clone(c)
}
