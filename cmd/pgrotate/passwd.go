package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pgrotate/pgrotate/auth"
)

// runPasswd reads one password from stdin and prints its verifier. The
// password never appears on the command line, where ps and shell history
// would keep it.
func runPasswd(_ context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(io.err)
	iterations := fs.Int("iterations", 4096, "SCRAM iteration count (PostgreSQL's default is 4096)")
	md5User := fs.String("md5-user", "", "print an md5 secret for this user instead (legacy clients only)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	pw, err := readPassword(io.in)
	if err != nil {
		return fail(io.err, err)
	}
	if *md5User != "" {
		fmt.Fprintln(io.out, auth.MD5Secret(*md5User, pw))
		return exitOK
	}
	v, err := auth.NewSCRAMVerifier(pw, *iterations)
	if err != nil {
		return fail(io.err, fmt.Errorf("making verifier: %w", err))
	}
	fmt.Fprintln(io.out, v)
	return exitOK
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%w: no password on stdin (try: echo -n 'secret' | pgrotate passwd)", errUsage)
	}
	return pw, nil
}
