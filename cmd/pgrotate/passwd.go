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
	overlap := fs.String("overlap", "", "an existing SCRAM verifier of the same client: the new one gets its salt\nand iterations, so both passwords work while the app's password rotates")
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
	v, err := newVerifier(pw, *iterations, *overlap)
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

// newVerifier makes a verifier for pw, sharing salt and iterations with the
// verifier overlap when given: SCRAM sends one salt per login, so verifiers
// valid at the same time must share it (see package auth).
func newVerifier(pw string, iterations int, overlap string) (string, error) {
	if overlap == "" {
		return auth.NewSCRAMVerifier(pw, iterations)
	}
	old, err := auth.ParseSecret(overlap)
	if err != nil || old.Method() != auth.MethodSCRAM {
		return "", fmt.Errorf("%w: -overlap needs a SCRAM-SHA-256 verifier", errUsage)
	}
	return auth.NewSCRAMVerifierWithSalt(pw, old.Salt(), old.Iterations())
}
