package daemon

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newRegistry holds every metric pgrotate exports on /metrics: the proxy's
// own, the pools', the rotation managers', and Go's and the process's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func (d *Daemon) metricsHandler() http.Handler {
	return promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{})
}

// rotationCollector reads each database's rotation state at scrape time.
type rotationCollector struct {
	d                                          *Daemon
	generation, promotedAgo, failures, pending *prometheus.Desc
}

func newRotationCollector(d *Daemon) *rotationCollector {
	db := []string{"database"}
	return &rotationCollector{
		d: d,
		generation: prometheus.NewDesc("pgrotate_credential_generation",
			"Current credential generation; it grows by one with each rotation (promotion).", []string{"database", "role"}, nil),
		promotedAgo: prometheus.NewDesc("pgrotate_credential_age_seconds",
			"Seconds since the current credential was promoted.", db, nil),
		failures: prometheus.NewDesc("pgrotate_credential_validation_failures_total",
			"Candidate credentials that failed validation (wrong password, not a member of the owner, …).", db, nil),
		pending: prometheus.NewDesc("pgrotate_credential_candidate_pending",
			"1 while a candidate credential waits for validation or a retry.", db, nil),
	}
}

func (c *rotationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.generation
	ch <- c.promotedAgo
	ch <- c.failures
	ch <- c.pending
}

func (c *rotationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, db := range c.d.dbs {
		name := db.cfg.Name
		st := db.manager.Stats()
		ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(st.Generation), name, st.Role)
		if gen, ok := db.manager.Current(); ok {
			ch <- prometheus.MustNewConstMetric(c.promotedAgo, prometheus.GaugeValue, time.Since(gen.PromotedAt).Seconds(), name)
		}
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.ValidationFailures), name)
		pending := 0.0
		if st.Pending {
			pending = 1
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, pending, name)
	}
}
