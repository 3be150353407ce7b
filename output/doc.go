// Package output stores processing results behind gocloud.dev/blob URLs
// (file://, s3://, mem://): path templates like the Batch API's, atomic writes that
// never leave a partial object, resume (skip outputs that are already complete) and
// a job manifest.
//
// Every object written by [Store.Put] carries its size and SHA-256 as blob metadata,
// so a resumed run can recognise a complete output with [Store.Exists] and report
// its checksum without reading it again.
package output
