// Package ops serves a worker's operations HTTP endpoints: the asynqmon queue UI
// at /monitoring/, Prometheus metrics at /metrics, a health check at /healthz, a
// live jobs page at /jobs (and its data at /jobs.json) with a map of a job's
// tiles (JobMap) and charts of the whole fleet's requests and PU per minute
// (each worker's Series flushed to Redis, read back with FleetPoints). It also
// builds the worker's zerolog logger.
//
// Wiring, as cmd/worker does it:
//
//	m := ops.NewMetrics()
//	w, _ := worker.New(worker.Config{..., Hooks: m.Hooks()})
//	go m.Series().RunFleetFlush(ctx, rdb, prefix, 0, nil) // with or without an ops server
//	h, _ := ops.NewHandler(ops.Config{Redis: rdb, Metrics: m, Account: clientID,
//		Sources: ops.Sources{Limiter: w.Limiter, Tokens: w.Tokens, Jobs: w.Jobs, Inspector: w.Inspector},
//		Logger: log})
//	defer h.Close()
//	go ops.Serve(ctx, ":8080", h)
//
// Nothing here ever shows a token or a secret: task payloads carry only ids, the
// health check reports the token's state and remaining lifetime, never the token.
package ops
