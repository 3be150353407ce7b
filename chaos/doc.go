// Package chaos is shfleet's end-to-end fault suite: real worker processes, a
// real redis-server (or Redis Cluster) and the Sentinel Hub simulator as a
// process, with workers killed, Redis restarted, the simulator failing, the
// monthly budget running out, jobs cancelled and workers stopped mid-job.
//
// The tests carry the build tag "chaos" so `go test ./...` skips them; run them
// with `make chaos` (go test -tags chaos -count=1 -timeout 60m -v ./chaos/);
// CHAOS_RACE=1 builds the worker and the simulator with the race detector.
// Each scenario prints one line
//
//	VERDICT <scenario>: status=DONE items=N done=N failed=0 missing=0 duplicates=K 429s=0 tokens=T elapsed=... returns=R
//
// (duplicates: process requests the simulator served more than once, i.e.
// re-downloads; returns: items that went back to PENDING because they were found
// stuck in PROCESSING) and keeps its processes' logs in a directory it names,
// for debugging.
package chaos
