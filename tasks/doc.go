// Package tasks turns jobs into queue work and back: the asynq task types and
// payloads (ids only, never secrets or evalscripts), the catalog and process
// handlers that a worker runs, the job controller the enqueue CLI uses (submit,
// start, restart, cancel, resume), the [Feeder] that keeps a bounded window of
// process tasks queued for the active jobs, and — in errors.go, and nowhere
// else — the mapping from errors to queue behaviour (retry, delay, failure,
// skip): Classify and Judge decide, the handlers carry the verdict out (release
// the item, fail it, record a failed catalog group, pause for the month) and
// return Final or a WaitError made there.
//
// Work flows one way: the controller enqueues catalog tasks; a catalog task
// records its group's items, and the one that completes an auto-started job's
// analysis makes it PROCESSING (one script call, nothing enqueued); the feeder,
// leader-elected among the workers, takes items from the active jobs a window
// at a time and enqueues their process tasks; a process task does one item and
// reports. Start, cancel and restart never read or enqueue every item.
package tasks
