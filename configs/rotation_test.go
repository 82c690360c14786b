package configs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/configs"
)

// The rotation section is optional: left out, rotation is off and drain_wait
// is 10 minutes; written out, every key is read.
func TestRotationSection(t *testing.T) {
	if r := mustParse(t, validDoc).Rotation; r != (configs.Rotation{DrainWait: configs.Duration{Duration: 10 * time.Minute}}) {
		t.Fatalf("default rotation = %+v", r)
	}
	t.Setenv("PGROTATE_TEST_ADMIN_URL", "postgres://rotator:s3cret@db/postgres")
	r := mustParse(t, validDoc+yamlLines(
		"rotation:",
		"  admin_url: ${PGROTATE_TEST_ADMIN_URL}",
		"  interval: 24h",
		"  keep_previous: 2",
		"  drain_wait: 30m",
		"  role_prefix: bookstore_exec",
		"  valid_until: 72h",
	)).Rotation
	want := configs.Rotation{
		AdminURL: "postgres://rotator:s3cret@db/postgres", Interval: configs.Duration{Duration: 24 * time.Hour},
		KeepPrevious: 2, DrainWait: configs.Duration{Duration: 30 * time.Minute}, RolePrefix: "bookstore_exec",
		ValidUntil: configs.Duration{Duration: 72 * time.Hour},
	}
	if r != want {
		t.Fatalf("rotation = %+v, want %+v", r, want)
	}
}

// Each bad rotation setting is reported with its key, and the admin URL,
// which holds a password, is never shown.
func TestRotationErrors(t *testing.T) {
	cases := []struct{ lines, want string }{
		{"rotation: {interval: 1h}", "rotation.admin_url: required when rotation.interval is set"},
		{"rotation: {admin_url: 'host=db password=s3cret'}", "rotation.admin_url: must be a postgres:// or postgresql:// URL"},
		{"rotation: {keep_previous: -1}", "rotation.keep_previous: must be 0 or more"},
		{"rotation: {drain_wait: 0}", "rotation.drain_wait: must be a positive duration"},
		{"rotation: {admin_url: 'postgres://a:s3cret@db/x', interval: 24h, valid_until: 12h}", "rotation.valid_until: must be longer than rotation.interval"},
	}
	for _, tc := range cases {
		_, err := configs.Parse([]byte(validDoc+tc.lines+"\n"), "pgrotate.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want %q", tc.lines, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %v", tc.lines, err)
		}
	}
}
