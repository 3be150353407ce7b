// Package keys owns what every package that keeps state in Redis shares: the
// default key prefix. The fleet's packages (jobs, quota, tasks, worker, ops,
// the CLI) all default to it, so a fleet started without -prefix meets the
// same keys everywhere.
package keys

// DefaultPrefix starts every Redis key of a fleet that sets no prefix.
const DefaultPrefix = "shfleet"
