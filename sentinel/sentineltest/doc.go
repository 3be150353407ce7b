// Package sentineltest is an in-process Sentinel Hub simulator for tests and the
// offline demo, in the spirit of net/http/httptest: [NewServer] starts a real HTTP
// server on 127.0.0.1 that speaks the APIs shfleet uses. Its zero [Config] behaves
// like Sentinel Hub does today, not like the 2019 documentation; it models the
// service, never shfleet's client (it shares only wire types with it).
//
// What it simulates:
//
//   - The OAuth client-credentials token endpoint ([TokenPath], also /oauth/token),
//     with its own token-requests-per-minute limit. Tokens are unsigned but
//     well-formed JWTs carrying exp, iat, a unique jti and sub = the account's
//     user id ([Config.UserID], default [DefaultUserID], not the client id).
//   - Two deployments: the main one at the root and US West under [USWestPrefix]
//     (Process and Catalog APIs under both path spellings; the token endpoint only
//     at the root). Landsat (mss, tm, etm, ot; l1/l2), HLS and MODIS are served on
//     US West only, everything else on main only; [Server.ClientConfig] names both.
//   - Bearer authentication of every API call: unknown, expired (by [Config.Now]) or
//     revoked ([Server.ExpireTokens]) tokens get 401.
//   - Rate-limit policies as token buckets: capacity C per period, continuous refill
//     at C/period, never above C, starting full. A request needs one unit of every
//     "requests" policy and its PU of every "pu" policy; unless all admit it, it gets
//     429 and nothing is charged. A request costing more PU than a policy's capacity
//     can never pass: it always gets 429 (split such requests). By default a 429
//     carries only Retry-After (milliseconds, the larger of the request and PU
//     waits) and a 2xx process answer X-ProcessingUnits-Spent; [HeadersLegacy]
//     adds the 2019 headers (X-ProcessingUnits-Retry-After, X-RateLimit-Remaining,
//     X-ProcessingUnits-Remaining, X-RateLimit-ViolatedPolicy), [HeadersNone]
//     sends none.
//   - Another client of the same account ([Config.ExternalLoad],
//     [Server.SetExternalLoad]): it takes a fixed share of every rate policy's
//     refill, deterministically; [Stats.ExternalUnits] says how much.
//   - The account's published policies, as Sentinel Hub's rate-limiting guard reads
//     them: [RateLimitContractPath]?userId=eq:<sub> lists the policies (REQUESTS,
//     PROCESSING_UNITS, the monthly budget as PT744H) and
//     [RateLimitStatisticsPath]<sub> the units left now in each. They need a valid
//     token, answer 403 for another user's id, are never rate limited or charged,
//     and answer 404 with [Config.NoRateLimitAPI].
//   - A monthly PU budget: a process request that would overspend it gets 403; the
//     budget resets when Config.Now enters a new calendar month (UTC).
//   - Collections the account may not read ([Config.ForbiddenCollections]): 403
//     "insufficient permissions", with the same status (and, on the Process API,
//     the same code) as the monthly quota's 403 but another message.
//   - The simulator's own collection table: sentinel-2-l1c/l2a, landsat-* and hls
//     have cloud cover (maxCloudCoverage, leastCC, eo:cloud_cover);
//     sentinel-1-grd, modis, byoc-<id> and batch-<id> have not (400 naming the
//     field); dem is timeless (no catalog collection: 404; any or no time range);
//     unknown types get 400 naming input.data[i].type.
//   - The order of checks is: token (401), body and collection rules (400),
//     forbidden collection (403), monthly budget (403), rate limits (429), injected
//     503; only then is anything charged. Invalid requests are rejected before rate
//     limiting and cost nothing.
//   - The Catalog API (STAC item search) over a deterministic synthetic world: 1x1
//     degree cells, one acquisition per cell every 5 days, deterministic cloud cover
//     (only on collections that have it). A catalog request costs one request unit
//     of every "requests" policy and 0 PU. Its errors are in the catalog's own
//     shape, {"code": <status>, "description": "..."} (schema CatalogException);
//     a collection it does not have is 404 "Collection not found".
//   - The Process API: validated requests get a deterministic, georeferenced
//     GeoTIFF of the requested size, bands and sample type (Deflate strips, a
//     seeded checker-and-gradient pattern) whose bytes are exactly [ProcessBody],
//     or an application/x-tar of them for several outputs or Accept:
//     application/tar (or x-tar). The PU cost is known before
//     admission, by the documented rules applied to the evalscript's setup() as the
//     simulator parses it itself: area px/(512*512), at least 0.01; input bands/3,
//     dataMask free; x2 for a FLOAT32 output; x the acquisitions of ORBIT/TILE
//     mosaicking in the time range; at least 0.005 PU. A setup() it cannot read
//     is charged as 3 bands, UINT8, SIMPLE. PU are charged on 2xx only.
//   - Faults: random 503s (not charged), truncated bodies (charged: the server did
//     the work) and latency, from a seeded RNG.
//
// [Server.Stats] reports what happened, including the largest load admitted in any
// sliding window of each policy's period, so a test can prove that a fleet stayed
// inside its limits. Note that a token bucket itself admits up to 2C in one window
// (a full bucket plus one period of refill).
package sentineltest
