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
// job hash so [Store.Get] is O(1) however many items a job has. The call that
// finishes the last item records the job's end (Job.Ending) but leaves it
// PROCESSING; [Store.Finish] makes the status final once the caller has written
// the job's manifest, so a job never reads DONE before its manifest exists.
//
// A catalog group whose search fails for good is recorded by [Store.FailAnalysis]:
// its tiles count as failed, the analysis completes without them (a job that
// then has no item at all is FAILED at once), and the job ends PARTIAL (FAILED
// when no item is DONE). [Store.Restart] puts the failed groups' tiles back to
// un-analysed and the job back to ANALYSING, and returns the groups to search again.
//
// Items are compact: an item is addressed by its ordinal, a number within the
// job. Each tile analysed gets a run of ordinals (its base, handed out by an
// INCRBY on the job hash) and one packed record: the items' days as uint16
// offsets from the job's first day, their PU estimate (once when equal), and
// their from/to times only when they are not the acquisition day cut to the
// job's range (intervals). An item's status, returns and attempts are one byte
// at its ordinal in a status string; only unusual items carry text (the last
// error of a failed or returned item). Item ids stay <tile>_<YYYY-MM-DD> for
// payloads, outputs and logs: the scripts map an id to its ordinal through the
// tile's record. A job of 10,000 items takes ~7 bytes per item after the
// analysis (TestMemoryPerItem) instead of ~770 with one JSON document each.
// What a DONE item produced (outputs, PU spent) is not item state: it is a
// [Record] appended to the job's records stream, read in pages with
// [Store.Records] and trimmed once stored elsewhere ([Store.TrimRecords]).
// Listings are paged ([Store.Items] with a cursor, [Store.AllItems]).
// [Store.Feed] hands out PENDING items from a cursor over the ordinals that only
// moves forward, after a list of the items that went back behind it.
//
// Keys, all under Store.Prefix (default "shfleet") with the job id as a Redis
// Cluster hash tag so one job's keys share a slot:
//
//	<prefix>:jobs                          sorted set of job ids by creation time
//	<prefix>:job:{<id>}                    hash: spec JSON, status, counters, times,
//	                                       day0/from/to (the range items decode
//	                                       against), next_ord (ordinals handed out),
//	                                       feed_cursor (the next ordinal Feed reads),
//	                                       manifest_* (records stored as parts)
//	<prefix>:job:{<id>}:tiles              hash: tile name -> grid.Tile JSON
//	<prefix>:job:{<id>}:analysed           set of analysed tile names
//	<prefix>:job:{<id>}:acq                hash: tile name -> packed tile record
//	                                       (layout in lua/common.lua)
//	<prefix>:job:{<id>}:ord                sorted set: tile name by base ordinal
//	<prefix>:job:{<id>}:st                 string: one status byte per ordinal
//	                                       (status, returns, attempts)
//	<prefix>:job:{<id>}:err                hash: ordinal -> last error, only for
//	                                       items that failed or returned
//	<prefix>:job:{<id>}:failed             sorted set of FAILED ordinals
//	<prefix>:job:{<id>}:records            stream: one entry per DONE item (item
//	                                       id, spent milli-PU, outputs JSON)
//	<prefix>:job:{<id>}:failed:tiles       hash: tile name -> catalog group number, for
//	                                       tiles whose search failed for good
//	<prefix>:job:{<id>}:failed:groups      hash: group number -> JSON {tiles, reason,
//	                                       failed_at}, what a restart searches again
//	<prefix>:job:{<id>}:feed               list of ordinals [Store.Feed] takes first:
//	                                       returned, restarted, handed back items
//	<prefix>:jobs:active                   sorted set of PROCESSING jobs (the feeder's)
//
// Running out of the monthly PU quota does not change the job's status: [Store.Pause]
// records StoppedReason (e.g. [ReasonOutOfPU]) and ResumeAt on a job that stays
// PROCESSING, and [Store.Resume] clears them. Holding requests back is the quota
// package's business; the job only tells the user why nothing moves.
//
// The package stores no secrets: a Spec holds an output URL but never credentials.
package jobs
