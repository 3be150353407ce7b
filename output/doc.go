// Package output stores processing results: local directories through its own
// durable writer (temp file beside the target, fsync, rename, fsync of the
// directory; no sidecar files), s3:// and mem:// through gocloud.dev/blob. It
// lays out keys with path templates like the Batch API's, never leaves a
// partial object, skips outputs that are already complete (resume), refuses a
// write over another item's output (a collision), and writes the job manifest.
//
// Every object written by [Store.Put] carries its size, SHA-256 and origin
// (job, item, request hash): user extended attributes on local files where the
// file system keeps them, object metadata on S3. So a resumed run recognises a
// complete output with [Store.Exists] and reports its checksum without reading
// it again, and tells its own earlier output from another item's.
package output
