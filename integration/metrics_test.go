package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches and parses /metrics.
func (e *proxyEnv) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(e.adminURL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// value sums the samples of a family whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, found
}

// /metrics, scraped during load and across a rotation, reports what an SRE
// watches: transactions, server connections per generation and role, the
// current generation, pool waits and refused logins.
func TestMetricsDuringLoadAndRotation(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 4})
	l := startLoad(t, env, 4)
	waitFor(t, func() bool { return l.committed.Load() > 50 }, "load to commit")
	if _, err := connectAs(env, appUser, "wrong-password"); err == nil {
		t.Fatal("wrong password accepted")
	}

	m := env.scrape(t)
	db := map[string]string{"database": dbName}
	for _, name := range []string{"pgrotate_transactions_total", "pgrotate_queries_total", "pgrotate_pool_wait_seconds"} {
		if v, ok := value(m, name, db); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v); want > 0 under load", name, v, ok)
		}
	}
	if v, _ := value(m, "pgrotate_client_auth_failures_total", map[string]string{"reason": "wrong_password"}); v < 1 {
		t.Errorf("auth failures (wrong_password) = %v, want ≥ 1", v)
	}
	if v, _ := value(m, "pgrotate_credential_generation", db); v != 1 {
		t.Errorf("generation = %v, want 1", v)
	}
	if v, _ := value(m, "pgrotate_server_connections", map[string]string{"generation": "1", "role": execRole1}); v < 1 {
		t.Errorf("server connections of generation 1 = %v, want ≥ 1", v)
	}

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())
	m = env.scrape(t)
	if v, _ := value(m, "pgrotate_credential_generation", map[string]string{"database": dbName, "role": role}); v != 2 {
		t.Errorf("generation after the rotation = %v, want 2 for %s", v, role)
	}
	if v, _ := value(m, "pgrotate_server_connections", map[string]string{"generation": "1"}); v != 0 {
		t.Errorf("server connections of the drained generation = %v, want 0", v)
	}
	if age, ok := value(m, "pgrotate_credential_age_seconds", db); !ok || age > 60 {
		t.Errorf("credential age = %v, want a fresh promotion", age)
	}
	l.stop()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d failed transactions (first: %v)", f, l.firstErr.Load())
	}
	resp, err := http.Get(env.adminURL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
}
