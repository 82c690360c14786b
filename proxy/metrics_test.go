package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A client is counted in exactly one state of pgrotate_client_connections
// at a time, and no longer once it is closing.
func TestClientStateGaugesFollowOneClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	want := func(step string, exp map[string]float64) {
		t.Helper()
		got := clientGauges(t, reg)
		for _, l := range stateLabels {
			if got[l] != exp[l] {
				t.Errorf("after %s: state %q = %v, want %v", step, l, got[l], exp[l])
			}
		}
	}
	m.clientState(0, false, stateStartup, true)
	want("accept", map[string]float64{"startup": 1})
	m.clientState(stateStartup, true, stateAuth, true)
	m.clientState(stateAuth, true, stateConnecting, true)
	want("login", map[string]float64{"waiting": 1})
	m.clientState(stateConnecting, true, stateActive, true)
	want("a server connection", map[string]float64{"active": 1})
	m.clientState(stateActive, true, stateClosing, true)
	want("closing", map[string]float64{})
	m.clientState(stateClosing, true, 0, false)
	want("the end", map[string]float64{})
}

// clientGauges scrapes pgrotate_client_connections from reg, by state.
func clientGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "pgrotate_client_connections" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "state" {
					out[lp.GetValue()] = mt.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
