// Package security holds the end-to-end security checks of shfleet: client
// secrets and access tokens never reach logs, error messages, Redis (task
// payloads, job records, the shared token at rest) or asynqmon; the token at rest
// is useless without the client secret; untrusted names cannot place files outside
// the output root; Redis passwords work and never show up in errors; and the
// commands take secrets only from the environment or files, never from a flag
// value. It has no code of its own, only tests, which run the real worker, a real
// redis-server and the Sentinel Hub simulator.
package security
