package ops

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"shfleet/jobs"
	"shfleet/quota"
	"shfleet/tasks"
)

// Namespace starts the name of every shfleet metric; asynq's queue metrics keep
// their own "asynq_" names so asynq's dashboards work unchanged.
const Namespace = "shfleet"

// ScrapeTimeout bounds the Redis reads one scrape makes (job store, ledger).
const ScrapeTimeout = 5 * time.Second

// Sources are what the scrape-time collectors read: this process's limiter and
// token source (their counters), the job store and the queue inspector (Redis).
// Any field may be nil; its metrics are then absent.
type Sources struct {
	// Limiter: admission refusals, the month's PU ledger, the policies.
	Limiter *quota.Limiter
	// Tokens: token cache hits, Redis reads, refreshes, waits, errors.
	Tokens *quota.SharedTokenSource
	// Jobs: jobs and their items by status.
	Jobs *jobs.Store
	// Inspector: asynq's queue metrics.
	Inspector *asynq.Inspector
}

// Metrics is one process's Prometheus registry with the quota's and the
// pipeline's metrics. Counters are fed by the callbacks of Hooks; gauges and the
// token counters are read at scrape time from the Sources given to Attach.
// Every process exports its own counters; sum them across the fleet in PromQL.
// Safe for concurrent use.
type Metrics struct {
	// Registry holds every metric; serve it with promhttp (NewHandler does).
	Registry *prometheus.Registry

	admissions    prometheus.Counter
	admissionWait prometheus.Histogram
	rateLimited   *prometheus.CounterVec
	puSpent       *prometheus.CounterVec
	items         *prometheus.CounterVec
	catalog       *prometheus.CounterVec

	series *Series

	attachOnce sync.Once
	attachErr  error
}

// NewMetrics makes a registry with the counters and the Go runtime and process
// collectors. Call Attach (NewHandler does) to add the scrape-time metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		admissions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "quota",
			Name: "admissions_total", Help: "Requests the fleet's limiter admitted in this process (catalog and process)."}),
		admissionWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "quota",
			Name: "admission_wait_seconds", Help: "How long admitted requests waited for their quota slot.",
			Buckets: []float64{0, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "quota",
			Name: "rate_limited_total", Help: "HTTP 429 answers from Sentinel Hub, by violated policy (\"\" when the server named none)."},
			[]string{"policy"}),
		puSpent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace,
			Name: "pu_spent_total", Help: "Processing units charged (X-ProcessingUnits-Spent) for items this process finished, by job."},
			[]string{"job"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace,
			Name: "items_finished_total", Help: "Work items this process finished, by final status (DONE, FAILED)."},
			[]string{"status"}),
		catalog: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace,
			Name: "catalog_requests_total", Help: "Catalog API pages requested (cached=\"false\") or served from the Redis cache (cached=\"true\")."},
			[]string{"cached"}),
		series: NewSeries(nil),
	}
	for _, st := range []jobs.ItemStatus{jobs.ItemDone, jobs.ItemFailed} {
		m.items.WithLabelValues(string(st)) // present at 0 from the start
	}
	for _, c := range []string{"true", "false"} {
		m.catalog.WithLabelValues(c)
	}
	m.Registry.MustRegister(m.admissions, m.admissionWait, m.rateLimited, m.puSpent, m.items, m.catalog,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Hooks returns the callbacks that feed the counters and the per-minute series;
// pass them in worker.Config.Hooks.
func (m *Metrics) Hooks() tasks.Hooks {
	return tasks.Hooks{
		ItemFinished: func(job string, status jobs.ItemStatus, pu float64) {
			m.items.WithLabelValues(string(status)).Inc()
			if pu > 0 {
				m.puSpent.WithLabelValues(job).Add(pu)
				m.series.AddPU(pu)
			}
		},
		RateLimited: func(policy string) { m.rateLimited.WithLabelValues(policy).Inc() },
		CatalogRequest: func(cached bool) {
			m.catalog.WithLabelValues(fmt.Sprint(cached)).Inc()
		},
		Admitted: func(wait time.Duration) {
			m.admissions.Inc()
			m.admissionWait.Observe(wait.Seconds())
			m.series.AddRequest()
		},
	}
}

// Series is the per-minute record of requests admitted and PU spent in this
// process, fed by Hooks.
func (m *Metrics) Series() *Series { return m.series }

// Attach registers the scrape-time collectors over src: token source counters,
// limiter counters, this month's PU ledger, job items by status for jobs not
// final, and asynq's queue metrics. Only the first call registers; later calls
// return its result.
func (m *Metrics) Attach(src Sources) error {
	m.attachOnce.Do(func() {
		var cs []prometheus.Collector
		if src.Tokens != nil {
			cs = append(cs, tokenCollector{src.Tokens})
		}
		if src.Limiter != nil {
			cs = append(cs, limiterCollector{src.Limiter})
		}
		if src.Jobs != nil {
			cs = append(cs, jobsCollector{src.Jobs})
		}
		if src.Inspector != nil {
			cs = append(cs, metrics.NewQueueMetricsCollector(src.Inspector))
		}
		for _, c := range cs {
			if err := m.Registry.Register(c); err != nil {
				m.attachErr = fmt.Errorf("ops: register metrics collector %T: %w", c, err)
				return
			}
		}
	})
	return m.attachErr
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// tokenCollector exports the shared token source's counters.
type tokenCollector struct{ s *quota.SharedTokenSource }

var tokenDescs = struct{ hits, reads, refreshes, waits, errs, invalidations *prometheus.Desc }{
	hits:          desc("token_cache_hits_total", "Token requests of this process answered from its local cache."),
	reads:         desc("token_redis_reads_total", "Reads of the shared token from Redis by this process (token fetches)."),
	refreshes:     desc("token_refreshes_total", "Token requests this process sent to the token endpoint for the fleet."),
	waits:         desc("token_waits_total", "Times this process waited for another process's token refresh."),
	errs:          desc("token_errors_total", "Token requests of this process that failed."),
	invalidations: desc("token_invalidations_total", "Shared tokens this process deleted after a 401."),
}

func (c tokenCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c tokenCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	d := tokenDescs
	for _, v := range []struct {
		d *prometheus.Desc
		n uint64
	}{{d.hits, st.CacheHits}, {d.reads, st.RedisReads}, {d.refreshes, st.Refreshes}, {d.waits, st.Waits},
		{d.errs, st.Errors}, {d.invalidations, st.Invalidations}} {
		ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.n))
	}
}

// limiterCollector exports the limiter's refusal counters and the month's ledger.
type limiterCollector struct{ l *quota.Limiter }

var limiterDescs = struct{ tooFar, monthly, redisErrs, spent, reserved, budget, exhausted *prometheus.Desc }{
	tooFar:    desc("quota_too_far_total", "Reservations this process refused because the slot was booked too far ahead (task handed back to the queue)."),
	monthly:   desc("quota_monthly_refused_total", "Reservations this process refused because the month's PU are spent."),
	redisErrs: desc("quota_redis_errors_total", "Failed Redis calls of this process's limiter."),
	spent:     desc("pu_month_spent", "PU the fleet spent this month (settled, from the Redis ledger)."),
	reserved:  desc("pu_month_reserved", "PU the fleet has reserved and not settled yet this month."),
	budget:    desc("pu_month_budget", "The fleet's own monthly PU budget (0: none)."),
	exhausted: desc("pu_month_exhausted", "1 when Sentinel Hub answered 403 (monthly quota) this month, else 0."),
}

func (c limiterCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c limiterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	d := limiterDescs
	ch <- prometheus.MustNewConstMetric(d.tooFar, prometheus.CounterValue, float64(st.TooFar))
	ch <- prometheus.MustNewConstMetric(d.monthly, prometheus.CounterValue, float64(st.MonthlyRefused))
	ch <- prometheus.MustNewConstMetric(d.redisErrs, prometheus.CounterValue, float64(st.RedisErrors))
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	u, err := c.l.Usage(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d.spent, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(d.spent, prometheus.GaugeValue, float64(u.SpentMilliPU)/1000)
	ch <- prometheus.MustNewConstMetric(d.reserved, prometheus.GaugeValue, float64(u.ReservedMilliPU)/1000)
	ch <- prometheus.MustNewConstMetric(d.budget, prometheus.GaugeValue, u.BudgetPU)
	ex := 0.0
	if u.Exhausted {
		ex = 1
	}
	ch <- prometheus.MustNewConstMetric(d.exhausted, prometheus.GaugeValue, ex)
}

// jobsCollector exports the jobs by status and, for jobs not final, their items
// by status, read from the job store.
type jobsCollector struct{ s *jobs.Store }

var (
	jobsDesc     = desc("jobs", "Jobs in the store, by status.", "status")
	jobItemsDesc = desc("job_items", "Work items of jobs not final, by job and item status.", "job", "status")
	jobPUDesc    = desc("job_pu", "PU of jobs not final: estimated (kind=\"estimated\") and spent (kind=\"spent\").", "job", "kind")
)

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- jobItemsDesc
	ch <- jobPUDesc
}

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	list, err := c.s.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	byStatus := map[jobs.Status]int{}
	for _, j := range list {
		byStatus[j.Status]++
		if j.Status.Final() {
			continue
		}
		p := j.Progress
		for _, v := range []struct {
			st jobs.ItemStatus
			n  int
		}{{jobs.ItemPending, p.Pending}, {jobs.ItemScheduled, p.Scheduled}, {jobs.ItemProcessing, p.Processing},
			{jobs.ItemDone, p.Done}, {jobs.ItemFailed, p.Failed}} {
			ch <- prometheus.MustNewConstMetric(jobItemsDesc, prometheus.GaugeValue, float64(v.n), j.ID, string(v.st))
		}
		ch <- prometheus.MustNewConstMetric(jobPUDesc, prometheus.GaugeValue, float64(p.EstimatedMilliPU)/1000, j.ID, "estimated")
		ch <- prometheus.MustNewConstMetric(jobPUDesc, prometheus.GaugeValue, float64(p.SpentMilliPU)/1000, j.ID, "spent")
	}
	for st, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), string(st))
	}
}
