package configs

import (
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in YAML as "5s", "10m", "1h30m", or
// as a whole number of seconds.
type Duration struct{ time.Duration }

// parseDuration reads a Go duration string or a whole number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(time.Duration(1<<63-1)/time.Second) || n < -int64(time.Duration(1<<63-1)/time.Second) {
			return 0, fmt.Errorf("parsing duration: %d seconds is out of range", n)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parsing duration: %w", err)
	}
	return d, nil
}

// UnmarshalYAML lets a Duration be decoded by yaml.v3 directly, outside
// Parse (in other packages' test fixtures, say).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes a Duration the way it is read, such as "1h30m0s".
func (d Duration) MarshalYAML() (any, error) {
	return d.String(), nil
}
