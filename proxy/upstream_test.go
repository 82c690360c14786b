package proxy

import "testing"

func TestHostList(t *testing.T) {
	cases := []struct{ in, hosts, ports string }{
		{"db.internal", "db.internal", "5432"},
		{"db-a,db-b", "db-a,db-b", "5432,5432"},
		{"db-a:6000, db-b:6001", "db-a,db-b", "6000,6001"},
		{"10.0.0.1,[::1]:6000", "10.0.0.1,::1", "5432,6000"},
		{"/var/run/postgresql", "/var/run/postgresql", "5432"},
	}
	for _, tc := range cases {
		h, p := hostList(tc.in, 5432)
		if h != tc.hosts || p != tc.ports {
			t.Errorf("hostList(%q) = %q, %q; want %q, %q", tc.in, h, p, tc.hosts, tc.ports)
		}
	}
}
