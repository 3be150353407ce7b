// Package sentineltest is an in-process Sentinel Hub simulator for tests and the
// offline demo, in the spirit of net/http/httptest: [NewServer] starts a real HTTP
// server on 127.0.0.1 that speaks the APIs shfleet uses, with the limits the
// documentation describes.
//
// What it simulates:
//
//   - The OAuth client-credentials token endpoint ([TokenPath], also /oauth/token),
//     with its own token-requests-per-minute limit. Tokens are unsigned but
//     well-formed JWTs carrying exp, iat, sub and a unique jti.
//   - Bearer authentication of every API call: unknown, expired (by [Config.Now]) or
//     revoked ([Server.ExpireTokens]) tokens get 401.
//   - Rate-limit policies as token buckets: capacity C per period, continuous refill
//     at C/period, never above C, starting full. A request needs one unit of every
//     "requests" policy and its PU of every "pu" policy; unless all admit it, it gets
//     429 and nothing is charged. A request costing more PU than a policy's capacity
//     can never pass: it always gets 429 (split such requests). The 429 carries the documented headers
//     (Retry-After and X-ProcessingUnits-Retry-After in milliseconds,
//     X-RateLimit-Remaining, X-ProcessingUnits-Remaining, X-RateLimit-ViolatedPolicy),
//     or only Retry-After, or nothing, as [Config.HeaderMode] says.
//   - A monthly PU budget: a process request that would overspend it gets 403; the
//     budget resets when Config.Now enters a new calendar month (UTC).
//   - The order of checks is: token (401), body (400), monthly budget (403), rate
//     limits (429), injected 503; only then is anything charged. Invalid requests
//     are rejected before rate limiting and cost nothing.
//   - The Catalog API (STAC item search) over a deterministic synthetic world: 1x1
//     degree cells, one acquisition per cell every 5 days, deterministic cloud cover.
//     A catalog request costs one request unit of every "requests" policy and 0 PU.
//   - The Process API: validated requests get a small deterministic GeoTIFF (or a tar
//     of them for several outputs) whose bytes are exactly [ProcessBody]. The PU cost
//     is known before admission: [sentinel.EstimatePU] of the output size, the
//     evalscript's bands and sample type, and for ORBIT/TILE mosaicking the number of
//     acquisitions the synthetic catalog has in the time range. PU are charged on 2xx
//     only.
//   - Faults: random 503s (not charged), truncated bodies (charged: the server did
//     the work) and latency, from a seeded RNG.
//
// [Server.Stats] reports what happened, including the largest load admitted in any
// sliding window of each policy's period, so a test can prove that a fleet stayed
// inside its limits. Note that a token bucket itself admits up to 2C in one window
// (a full bucket plus one period of refill).
package sentineltest
