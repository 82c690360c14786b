package proxy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. Counters on the relay's path
// are plain atomic adds; pool and connection gauges are read from the pools
// when Prometheus scrapes (see poolCollector), so nothing is kept twice.
type Metrics struct {
	clients       *prometheus.GaugeVec
	byState       [stateClosing]prometheus.Gauge // clients' children, resolved once (clientState)
	authFailures  *prometheus.CounterVec
	poolWait      *prometheus.HistogramVec
	waitTimeouts  *prometheus.CounterVec
	transactions  *prometheus.CounterVec
	queries       *prometheus.CounterVec
	clientMoves   *prometheus.CounterVec
	drainTimeouts *prometheus.CounterVec
	guardRefusals *prometheus.CounterVec
	healthChecks  *prometheus.CounterVec
	cleanups      *prometheus.CounterVec
	evictedStmts  *prometheus.CounterVec
}

// NewMetrics creates the proxy's metrics and registers them, with a
// collector of srv's pools, on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	byDB := []string{"database"}
	perDB := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, byDB)
	}
	m := &Metrics{
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgrotate_client_connections",
			Help: "Client connections by state (startup, auth, waiting for a server connection, active).",
		}, []string{"state"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgrotate_client_auth_failures_total",
			Help: "Client logins refused, by reason.",
		}, []string{"reason"}),
		poolWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgrotate_pool_wait_seconds",
			Help:    "Time a client waited for a server connection.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, byDB),
		waitTimeouts: perDB("pgrotate_pool_wait_timeouts_total",
			"Clients refused because no server connection became free within query_wait_timeout."),
		transactions: perDB("pgrotate_transactions_total",
			"Transactions completed (ReadyForQuery back to idle)."),
		queries: perDB("pgrotate_queries_total",
			"Requests sent by clients: simple queries, extended-protocol Syncs and function calls."),
		clientMoves: perDB("pgrotate_session_moves_total",
			"Session-mode clients moved to a server connection of a newer credential generation."),
		drainTimeouts: perDB("pgrotate_drain_timeouts_total",
			"Clients disconnected with 57P01 because they could not move off a rotated credential within drain_timeout."),
		guardRefusals: perDB("pgrotate_role_guard_refusals_total",
			"Statements refused by the role guard because they would change the role."),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgrotate_server_health_checks_total",
			Help: "Checks that an idle server connection still answers, by result (ok, failed: the connection was closed).",
		}, []string{"database", "result"}),
		cleanups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgrotate_transaction_cleanups_total",
			Help: "Transaction-mode server connections cleaned after a transaction before serving another client, by kind (role: RESET ROLE; session_state: LISTEN, temporary tables, WITH HOLD cursors, advisory locks, SQL PREPARE undone; statements: DEALLOCATE ALL after text that mentioned DEALLOCATE or DISCARD; statement_cap: the least recently used shared prepared statements deallocated past max_prepared_statements).",
		}, []string{"database", "kind"}),
		evictedStmts: perDB("pgrotate_prepared_statements_evicted_total",
			"Shared prepared statements deallocated from transaction-mode server connections that held more than max_prepared_statements. Steady growth means the cap is below the app's working set of statements: each eviction costs a Parse when the statement is used again."),
	}
	for st, l := range stateLabels {
		m.byState[st] = m.clients.WithLabelValues(l)
	}
	reg.MustRegister(m.clients, m.authFailures, m.poolWait, m.waitTimeouts, m.transactions,
		m.queries, m.clientMoves, m.drainTimeouts, m.guardRefusals, m.healthChecks, m.cleanups, m.evictedStmts)
	return m
}

// dbMetrics are one database's metrics, resolved once so the relay does not
// look labels up per message. Without a registry they are unregistered
// metrics: counting costs the same, nobody reads them.
type dbMetrics struct {
	poolWait                                  prometheus.Observer
	waitTimeouts, transactions, queries       prometheus.Counter
	clientMoves, drainTimeouts, guardRefusals prometheus.Counter
	healthOK, healthFailed                    prometheus.Counter
	cleanups                                  []prometheus.Counter // by kind, as cleanupKinds
	evictedStmts                              prometheus.Counter
}

func (m *Metrics) forDatabase(db string) *dbMetrics {
	if m == nil {
		m = newUnregisteredMetrics()
	}
	d := &dbMetrics{
		poolWait:      m.poolWait.WithLabelValues(db),
		waitTimeouts:  m.waitTimeouts.WithLabelValues(db),
		transactions:  m.transactions.WithLabelValues(db),
		queries:       m.queries.WithLabelValues(db),
		clientMoves:   m.clientMoves.WithLabelValues(db),
		drainTimeouts: m.drainTimeouts.WithLabelValues(db),
		guardRefusals: m.guardRefusals.WithLabelValues(db),
		healthOK:      m.healthChecks.WithLabelValues(db, "ok"),
		healthFailed:  m.healthChecks.WithLabelValues(db, "failed"),
		evictedStmts:  m.evictedStmts.WithLabelValues(db),
	}
	for _, k := range cleanupKinds {
		d.cleanups = append(d.cleanups, m.cleanups.WithLabelValues(db, k.label))
	}
	return d
}

func newUnregisteredMetrics() *Metrics {
	return NewMetrics(prometheus.NewRegistry())
}

// stateLabels name session states for pgrotate_client_connections; a
// closing client is no longer counted.
var stateLabels = [stateClosing]string{
	stateStartup:    "startup",
	stateAuth:       "auth",
	stateConnecting: "waiting",
	stateActive:     "active",
}

// clientState moves one client from state from to state to; ok=false for
// "none" (a new or a finished client). The gauges are resolved once: a
// label lookup per change was 1.8 % of a login's CPU (perf, pgbench -C),
// with several changes per login.
func (m *Metrics) clientState(from sessionState, fromOK bool, to sessionState, toOK bool) {
	if m == nil {
		return
	}
	if g := m.stateGauge(from); g != nil && fromOK {
		g.Dec()
	}
	if g := m.stateGauge(to); g != nil && toOK {
		g.Inc()
	}
}

// stateGauge is st's gauge, or nil for a state that is not counted.
func (m *Metrics) stateGauge(st sessionState) prometheus.Gauge {
	if st < 0 || int(st) >= len(m.byState) {
		return nil
	}
	return m.byState[st]
}

// authFailed counts a refused login by a coarse reason.
func (m *Metrics) authFailed(reason string) {
	if m != nil {
		m.authFailures.WithLabelValues(reason).Inc()
	}
}

// poolCollector reports server connections per database, generation, role
// and state, read from the pools at scrape time.
type poolCollector struct {
	srv  *Server
	desc *prometheus.Desc
	cl   *prometheus.Desc
	wait *prometheus.Desc
}

// NewPoolCollector returns a collector of srv's server connections.
func NewPoolCollector(srv *Server) prometheus.Collector {
	return &poolCollector{
		srv: srv,
		desc: prometheus.NewDesc("pgrotate_server_connections",
			"Server connections by database, credential generation, executing role and state (idle or busy).",
			[]string{"database", "generation", "role", "state"}, nil),
		cl: prometheus.NewDesc("pgrotate_database_clients",
			"Client sessions per database.", []string{"database"}, nil),
		wait: prometheus.NewDesc("pgrotate_database_waiting_clients",
			"Clients waiting for a server connection, per database.", []string{"database"}, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.cl
	ch <- c.wait
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for db, ps := range c.srv.Status() {
		ch <- prometheus.MustNewConstMetric(c.cl, prometheus.GaugeValue, float64(ps.Clients), db)
		ch <- prometheus.MustNewConstMetric(c.wait, prometheus.GaugeValue, float64(ps.Waiting), db)
		for _, g := range ps.Generations {
			gen := strconv.FormatUint(g.Generation, 10)
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(g.Idle), db, gen, g.Role, "idle")
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(g.Busy), db, gen, g.Role, "busy")
		}
	}
}
