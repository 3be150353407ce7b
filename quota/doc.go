// Package quota keeps a whole worker fleet under one Sentinel Hub account's limits:
// one OAuth token shared through Redis (refreshed by exactly one process), and one
// multi-policy limiter (requests and PU per period, PU per month) whose admissions
// are atomic across all policies, paced evenly, and corrected by the server's own
// answers (429, 403, X-ProcessingUnits-Spent).
package quota
