// Package tasks turns jobs into queue work and back: the asynq task types and
// payloads (ids only, never secrets or evalscripts), the catalog and process
// handlers that a worker runs, the job controller the enqueue CLI uses (submit,
// start, restart, cancel, resume), and — in errors.go, and nowhere else — the
// mapping from errors to queue behaviour (retry, delay, failure, skip).
package tasks
