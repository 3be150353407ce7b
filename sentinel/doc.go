// Package sentinel is a small, typed client for the Sentinel Hub APIs that shfleet
// uses: the OAuth client-credentials token endpoint, the Catalog API (STAC item
// search, paginated lazily) and the Process API (bodies streamed, never buffered
// whole). It also estimates the processing units (PU) a process request costs from
// the documented rules, and turns every non-2xx answer into a typed error built from
// the status and the documented rate-limit headers.
//
// The package has no Redis and does no logging: it returns errors and lets callers
// decide. The same APIs are served by the Copernicus Data Space Ecosystem; see
// [PresetCDSE].
package sentinel
