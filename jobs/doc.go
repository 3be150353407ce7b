// Package jobs keeps shfleet's job and work-item records and their state machine
// in Redis, mirroring the Sentinel Hub Batch Processing API workflow: a job goes
// CREATED -> ANALYSING -> ANALYSIS_DONE -> PROCESSING -> DONE | PARTIAL | FAILED,
// and may be CANCELED from any state that is not final; its work items (tile x
// acquisition date, or tile x time interval) go PENDING -> SCHEDULED -> PROCESSING
// -> DONE | FAILED, a stuck item returning to PENDING up to twice.
//
// Every state change is one Lua script (the scripts are the *.lua files beside
// this one), so concurrent workers never double-count: recording the same catalog
// group twice adds nothing, the flip to ANALYSIS_DONE and the detection of the
// job's end each happen in exactly one call, and per-status counters live in the
// job hash so [Store.Get] is O(1) however many items a job has.
//
// A catalog group whose search fails for good is recorded by [Store.FailAnalysis]:
// its tiles count as failed, the analysis completes without them (a job that
// then has no item at all is FAILED at once), and the job ends PARTIAL (FAILED
// when no item is DONE). [Store.Restart] puts the failed groups' tiles back to
// un-analysed and the job back to ANALYSING, and returns the groups to search again.
//
// Keys, all under Store.Prefix (default "shfleet") with the job id as a Redis
// Cluster hash tag so one job's keys share a slot:
//
//	<prefix>:jobs                          sorted set of job ids by creation time
//	<prefix>:job:{<id>}                    hash: spec JSON, status, counters, times
//	<prefix>:job:{<id>}:tiles              hash: tile name -> grid.Tile JSON
//	<prefix>:job:{<id>}:analysed           set of analysed tile names
//	<prefix>:job:{<id>}:items              hash: item id -> Item JSON
//	<prefix>:job:{<id>}:items:<STATUS>     set of item ids per item status
//	<prefix>:job:{<id>}:failed:tiles       hash: tile name -> catalog group number, for
//	                                       tiles whose search failed for good
//	<prefix>:job:{<id>}:failed:groups      hash: group number -> JSON {tiles, reason,
//	                                       failed_at}, what a restart searches again
//	<prefix>:job:{<id>}:feed               list: PENDING items [Store.Feed] takes first
//	                                       (returned, restarted, handed back)
//	<prefix>:jobs:active                   sorted set of PROCESSING job ids (by start),
//	                                       the feeder's index ([Store.ActiveJobs])
//
// A PROCESSING job's items are queued a window at a time: [Store.Feed] takes up
// to n PENDING items and makes them SCHEDULED in one script, and
// [Store.Unfeed] hands back those whose task could not be queued. Start and
// Cancel are status changes; [Store.Restart] works in pages. The active index
// lives outside the job's hash tag (it spans jobs), so the Store writes it right
// after the script that changed the status, and [Store.Activate] repairs it.
//
// Running out of the monthly PU quota does not change the job's status: [Store.Pause]
// records StoppedReason (e.g. [ReasonOutOfPU]) and ResumeAt on a job that stays
// PROCESSING, and [Store.Resume] clears them. Holding requests back is the quota
// package's business; the job only tells the user why nothing moves.
//
// The package stores no secrets: a Spec holds an output URL but never credentials.
package jobs
