package demo

import (
	"errors"
	"time"
)

// Config is what a demo run does. The zero value of a field means its
// default (see the Default* constants).
type Config struct {
	// Duration is how long the workload and the rotations run.
	Duration time.Duration
	// Every is the time between two rotations of the executing role.
	Every time.Duration
	// Clients is the number of concurrent transaction workers.
	Clients int
	// Quiet shows no live view; only the summary is written.
	Quiet bool
	// Live redraws the view in place with ANSI escape codes, about four
	// times a second; use it when the output is a terminal. Otherwise the
	// view is one appended line per second, readable in logs and pipes.
	Live bool
}

// Defaults of Config, also used as the flag defaults of `pgrotate demo`.
const (
	DefaultDuration = 30 * time.Second
	DefaultEvery    = 5 * time.Second
	DefaultClients  = 8
)

// maxClients bounds Clients: every worker holds a server connection in
// session mode, and the demo's cluster is small.
const maxClients = 64

func (c Config) withDefaults() Config {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Every == 0 {
		c.Every = DefaultEvery
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Duration < 0:
		return errors.New("duration must be positive")
	case c.Every < 500*time.Millisecond:
		return errors.New("every must be at least 500ms: pgrotate polls the credential directory once a second")
	case c.Clients < 1 || c.Clients > maxClients:
		return errors.New("clients must be between 1 and 64")
	}
	return nil
}
