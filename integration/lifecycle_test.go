package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/internal/daemon"
	"github.com/pgrotate/pgrotate/rotation"
)

// lcDB is a database of its own for one lifecycle test, created by the
// superuser (so at first neither it nor its objects belong to the owner)
// and dropped with its roles at the end.
type lcDB struct {
	name, owner, prefix, credPath string
}

func newLCDB(t *testing.T, name string) lcDB {
	t.Helper()
	db := lcDB{name: name, owner: name + "_owner", prefix: name + "_user", credPath: filepath.Join(t.TempDir(), "secret")}
	must(t, cluster.Exec(ctxT(t), "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()))
	t.Cleanup(func() { dropLCDB(context.Background(), db) })
	return db
}

// dropLCDB drops the database, then every role the test left.
func dropLCDB(ctx context.Context, db lcDB) {
	_ = cluster.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{db.name}.Sanitize()+" WITH (FORCE)")
	dropRolesLike(ctx, db.prefix)
	_ = cluster.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+pgx.Identifier{db.owner}.Sanitize())
}

// dropRolesLike drops every role named <prefix>_…, after their sessions.
func dropRolesLike(ctx context.Context, prefix string) {
	rows, _ := cluster.QueryStrings(ctx, "postgres", "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", prefix+"_")
	for _, r := range rows {
		_, _ = cluster.TerminateBackends(ctx, r[0])
		_ = dropRole(ctx, r[0])
	}
}

// lifecycle returns the role lifecycle of db on its own admin pool, as
// `pgrotate setup|rotate` build it.
func (db lcDB) lifecycle(t *testing.T, report *syncBuffer) *rotation.Lifecycle {
	t.Helper()
	pool, err := rotation.OpenAdmin(ctxT(t), cluster.AdminURL("postgres"), db.name)
	must(t, err)
	t.Cleanup(pool.Close)
	return &rotation.Lifecycle{
		Admin: pool, DBName: db.name, Owner: db.owner, Prefix: db.prefix,
		Credentials: db.credPath, DrainWait: 30 * time.Second, PollEvery: 20 * time.Millisecond,
		Report: func(line string) { fmt.Fprintln(report, line) },
	}
}

// execRoles lists the members of owner named <prefix>_NNNN, oldest first.
func execRoles(t *testing.T, owner, prefix string) []string {
	t.Helper()
	rows, err := cluster.QueryStrings(ctxT(t), "postgres", `
		SELECT r.rolname FROM pg_roles r
		  JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles o ON o.oid = m.roleid
		 WHERE o.rolname = $1 AND r.rolname ~ ('^' || $2 || '_[0-9]{4,}$') ORDER BY 1`, owner, prefix)
	must(t, err)
	var out []string
	for _, r := range rows {
		out = append(out, r[0])
	}
	return out
}

// assertConverged: exactly want executing roles are left, the credential
// file names the newest, and its password logs in acting as the owner.
func assertConverged(t *testing.T, dbname, owner, prefix, credPath string, want int) string {
	t.Helper()
	roles := execRoles(t, owner, prefix)
	if len(roles) != want {
		t.Fatalf("executing roles left: %v; want %d", roles, want)
	}
	cred, err := rotation.Read(credPath, rotation.FormatAuto)
	must(t, err)
	if cred.Username != roles[len(roles)-1] {
		t.Fatalf("credential file names %s; newest executing role is %s", cred.Username, roles[len(roles)-1])
	}
	conn, err := pgx.Connect(ctxT(t), cluster.TCPURL(cred.Username, cred.Password, dbname))
	if err != nil {
		t.Fatalf("logging in with the written credential: %v", err)
	}
	defer conn.Close(context.Background())
	// ALTER ROLE … SET role = owner: a direct login acts as the owner too.
	if got := queryStrings(t, conn, "SELECT current_user, session_user"); got[0] != owner || got[1] != cred.Username {
		t.Fatalf("a direct login as %s has current_user, session_user = %v", cred.Username, got)
	}
	return cred.Username
}

// setup on a fresh database creates the owner, hands it the database and,
// when asked, every object; it creates the first executing role and writes
// its credential. Run again, it reports each thing as already done.
func TestSetupIsIdempotent(t *testing.T) {
	db := newLCDB(t, "lc_setup")
	must(t, cluster.Exec(ctxT(t), db.name, "CREATE TABLE pre_existing (id int)"))
	var out syncBuffer
	l := db.lifecycle(t, &out)

	res, err := l.Setup(ctxT(t), false)
	must(t, err)
	if !res.OwnerCreated || !res.OwnerOfDatabase || res.Role.Created != "lc_setup_user_0001" || len(res.NotOwned) != 1 {
		t.Fatalf("first setup: %+v\n%s", res, out.String())
	}
	assertLines(t, out.String(), "created owner role lc_setup_owner", "made lc_setup_owner own database lc_setup (was postgres)",
		"found table public.pre_existing owned by postgres", "created executing role lc_setup_user_0001", "wrote "+db.credPath)
	assertConverged(t, db.name, db.owner, db.prefix, db.credPath, 1)

	out = syncBuffer{}
	res, err = l.Setup(ctxT(t), true)
	must(t, err)
	if res.OwnerCreated || res.OwnerOfDatabase || res.Role.Created != "" || len(res.Moved) != 1 {
		t.Fatalf("second setup: %+v\n%s", res, out.String())
	}
	assertLines(t, out.String(), "already done: owner role lc_setup_owner exists", "already done: lc_setup_owner owns database lc_setup",
		"moved table public.pre_existing from postgres to lc_setup_owner", "already done: "+db.credPath+" names executing role lc_setup_user_0001")

	out = syncBuffer{}
	_, err = l.Setup(ctxT(t), true)
	must(t, err)
	assertLines(t, out.String(), "already done: lc_setup_owner owns every object in lc_setup")
	if strings.Contains(out.String(), "created") || strings.Contains(out.String(), "moved") {
		t.Fatalf("third setup changed something:\n%s", out.String())
	}
	assertConverged(t, db.name, db.owner, db.prefix, db.credPath, 1)
}

func assertLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// rotate stopped right after each step in turn, then run again, converges:
// one executing role, a file naming it, no orphan. --dry-run changes nothing.
func TestRotateConvergesAfterAStopAtEveryStep(t *testing.T) {
	db := newLCDB(t, "lc_crash")
	var out syncBuffer
	l := db.lifecycle(t, &out)
	_, err := l.Setup(ctxT(t), false)
	must(t, err)

	l.DryRun = true
	_, err = l.Rotate(ctxT(t))
	must(t, err)
	assertLines(t, out.String(), "plan: create executing role lc_crash_user_0002", "until lc_crash_user_0001 have no session")
	if roles := execRoles(t, db.owner, db.prefix); len(roles) != 1 {
		t.Fatalf("dry run created roles: %v", roles)
	}
	l.DryRun = false

	for step := rotation.StepCreateRole; step <= rotation.StepDrop; step++ {
		t.Run(step.String(), func(t *testing.T) {
			before := assertConverged(t, db.name, db.owner, db.prefix, db.credPath, 1)
			l.StopAfter = step
			if _, err := l.Rotate(ctxT(t)); !errors.Is(err, rotation.ErrStopped) {
				t.Fatalf("rotate with StopAfter=%v: %v", step, err)
			}
			l.StopAfter = rotation.StepNone
			res, err := l.Rotate(ctxT(t))
			if err != nil {
				t.Fatalf("rerun after a stop after %v: %v\n%s", step, err, out.String())
			}
			after := assertConverged(t, db.name, db.owner, db.prefix, db.credPath, 1)
			if after == before {
				t.Fatalf("still on %s after the rerun", before)
			}
			if step < rotation.StepDrop && !res.Resumed {
				t.Errorf("the rerun after %v started afresh instead of resuming: %+v", step, res)
			}
		})
	}
}

// An object created outside the owner role (an escaped session, or a
// superuser handing it over) shows in check, table and JSON, with a non-zero
// exit; rotate reassigns it to the owner before dropping the role, and check
// is clean again.
func TestEscapedObjectIsReportedAndReassigned(t *testing.T) {
	db := newLCDB(t, "lc_drift")
	var out syncBuffer
	l := db.lifecycle(t, &out)
	_, err := l.Setup(ctxT(t), false)
	must(t, err)
	must(t, cluster.Exec(ctxT(t), db.name, "CREATE TABLE escaped (id int); ALTER TABLE escaped OWNER TO lc_drift_user_0001"))
	cfg := lcConfig(t, db, "")

	table, code := runPgrotate(t, "check", "-config", cfg)
	if code != 1 || !containsAll(table, []string{"public.escaped", "lc_drift_user_0001", "NEEDS ATTENTION", "acts as owner: yes"}) {
		t.Fatalf("check with drift: exit %d\n%s", code, table)
	}
	var report struct {
		OK        bool                    `json:"ok"`
		Databases []*rotation.CheckReport `json:"databases"`
	}
	js, code := runPgrotate(t, "check", "-config", cfg, "-json")
	must(t, json.Unmarshal([]byte(js), &report))
	want := rotation.Object{Kind: "table", Name: "public.escaped", Owner: "lc_drift_user_0001"}
	if code != 1 || report.OK || !slices.Contains(report.Databases[0].NotOwned, want) {
		t.Fatalf("check -json with drift: exit %d\n%s", code, js)
	}

	res, err := l.Rotate(ctxT(t))
	must(t, err)
	if got := res.Reassigned["lc_drift_user_0001"]; !slices.Contains(got, rotation.Object{Kind: "table", Name: "public.escaped", Owner: "lc_drift_user_0001"}) {
		t.Fatalf("rotate reassigned %v; want the escaped table\n%s", got, out.String())
	}
	rows, err := cluster.QueryStrings(ctxT(t), db.name, "SELECT tableowner FROM pg_tables WHERE tablename = 'escaped'")
	must(t, err)
	if rows[0][0] != db.owner {
		t.Fatalf("escaped table owned by %s after rotate; want %s", rows[0][0], db.owner)
	}
	if out, code := runPgrotate(t, "check", "-config", cfg); code != 0 {
		t.Fatalf("check after rotate: exit %d\n%s", code, out)
	}
}

// Two schedulers on one database (two replicas of serve) never rotate at
// once, never create the same role twice, and leave one executing role.
func TestSchedulersNeverRotateAtOnce(t *testing.T) {
	db := newLCDB(t, "lc_sched")
	var out syncBuffer
	_, err := db.lifecycle(t, &out).Setup(ctxT(t), false)
	must(t, err)

	var inFlight, overlaps atomic.Int32
	var mu sync.Mutex
	var created []string
	var runErrs []error
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		s := &rotation.Scheduler{
			Lifecycle: db.lifecycle(t, &out),
			Interval:  10 * time.Millisecond,
			Logger:    slog.New(slog.NewTextHandler(&out, nil)),
			Started: func() {
				if inFlight.Add(1) > 1 {
					overlaps.Add(1)
				}
			},
			OnRun: func(res rotation.RotateResult, err error) {
				inFlight.Add(-1)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					runErrs = append(runErrs, err)
				}
				if res.Created != "" {
					created = append(created, res.Created)
				}
				if len(created) >= 8 {
					cancel()
				}
			},
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	select {
	case <-ctx.Done():
	case <-time.After(60 * time.Second):
		t.Error("schedulers did not rotate 8 times within 60s")
	}
	cancel()
	wg.Wait()
	if overlaps.Load() != 0 || len(runErrs) != 0 {
		t.Fatalf("%d overlapping rotations, errors %v\n%s", overlaps.Load(), runErrs, out.String())
	}
	slices.Sort(created)
	if len(slices.Compact(slices.Clone(created))) != len(created) {
		t.Fatalf("a role name was created twice: %v", created)
	}
	assertConverged(t, db.name, db.owner, db.prefix, db.credPath, 1)
}

// The product promise with the built-in rotator: pgrotate serving, load
// running, setup then ten rotations (the last through the binary) with zero
// failed transactions and exactly one executing role left; with
// keep_previous=2, two previous roles are kept.
func TestBuiltInRotationUnderLoad(t *testing.T) {
	const prefix = "bookstore_lc" // the shared bookstore's other roles are not ours to retire
	t.Cleanup(func() { dropRolesLike(context.Background(), prefix) })
	db := lcDB{name: dbName, owner: ownerRole, prefix: prefix, credPath: filepath.Join(t.TempDir(), "first")}
	var out syncBuffer
	l := db.lifecycle(t, &out)
	_, err := l.Setup(ctxT(t), false)
	must(t, err)
	first, err := rotation.Read(db.credPath, rotation.FormatAuto)
	must(t, err)

	env := startProxy(t, setup{execRole: first.Username, execPass: first.Password, poolSize: 12})
	l.Credentials, db.credPath = env.credPath(), env.credPath() // a Kubernetes-style volume from now on
	l.Settle = 2 * time.Second                                  // twice startProxy's poll_interval, as NewLifecycle sets it
	ld := startLoad(t, env, 8)
	for ld.committed.Load() < 100 { // every worker has its session
		time.Sleep(10 * time.Millisecond)
	}
	for i := 1; i <= 9; i++ {
		res, err := l.Rotate(ctxT(t))
		if err != nil {
			t.Fatalf("rotation %d: %v\n%s", i, err, out.String())
		}
		env.waitRotated(t, res.Current, time.Now())
	}
	cfg := lcConfig(t, db, "keep_previous: 0, role_prefix: "+prefix)
	if text, code := runPgrotate(t, "rotate", "-config", cfg, "-admin-url", cluster.AdminURL("postgres"), "-database", dbName); code != 0 {
		t.Fatalf("pgrotate rotate: exit %d\n%s", code, text)
	}
	current := assertConverged(t, dbName, ownerRole, prefix, env.credPath(), 1)
	env.waitRotated(t, current, time.Now())

	l.KeepPrevious = 2
	for range 3 {
		_, err := l.Rotate(ctxT(t))
		must(t, err)
	}
	assertConverged(t, dbName, ownerRole, prefix, env.credPath(), 3)
	ld.stop()
	if f := ld.failed.Load(); f != 0 {
		t.Fatalf("%d failed transactions during rotations (first: %v)\n%s", f, ld.firstErr.Load(), tail(env.logs.String(), 200))
	}
	if ld.committed.Load() == 0 {
		t.Fatal("no transaction committed")
	}
	assertNoSecrets(t, out.String())
}

// lcConfig writes a pgrotate.yaml for db and returns its path; rotation is
// the inside of the rotation: {…} mapping.
func lcConfig(t *testing.T, db lcDB, rotationKeys string) string {
	t.Helper()
	verifier, err := auth.NewSCRAMVerifier(appPass, 4096)
	must(t, err)
	if rotationKeys == "" {
		rotationKeys = "role_prefix: " + db.prefix
	}
	text := fmt.Sprintf(`upstream: {host: 127.0.0.1, port: %d, sslmode: disable}
databases:
  %s: {owner_role: %s, credentials: {path: %s, poll_interval: 1s}}
clients:
  - {user: %s, password_verifier: "%s"}
rotation: {%s}
`, cluster.Port, db.name, db.owner, db.credPath, appUser, verifier, rotationKeys)
	path := filepath.Join(t.TempDir(), "pgrotate.yaml")
	must(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

// runPgrotate runs the built binary and returns its output and exit code.
func runPgrotate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(pgrotateBinary(t), args...)
	outb, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(outb), exit.ExitCode()
	case err != nil:
		t.Fatalf("running pgrotate %v: %v", args, err)
	}
	return string(outb), 0
}

// serve with rotation.admin_url and rotation.interval rotates by itself:
// the scheduled rotation replaces the executing role, serve's own watcher
// promotes the new one, and the old role is dropped.
func TestServeRotatesOnSchedule(t *testing.T) {
	db := newLCDB(t, "lc_serve")
	var out syncBuffer
	_, err := db.lifecycle(t, &out).Setup(ctxT(t), false)
	must(t, err)
	cfg, err := configs.Load(lcConfig(t, db, fmt.Sprintf(`admin_url: "%s", interval: 1s, role_prefix: %s`, cluster.AdminURL("postgres"), db.prefix)))
	must(t, err)
	cfg.Databases[db.name].Credentials.PollInterval.Duration = 100 * time.Millisecond
	var logs syncBuffer
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, ln) }()
	defer func() {
		cancel()
		must(t, <-done)
		assertNoSecrets(t, logs.String())
		if t.Failed() {
			t.Logf("pgrotate log:\n%s", logs.String())
		}
	}()
	waitFor(t, func() bool {
		st := d.Status().Databases[0]
		return st.CurrentRole != "" && st.CurrentRole != "lc_serve_user_0001" && !slices.Contains(execRoles(t, db.owner, db.prefix), "lc_serve_user_0001")
	}, "a scheduled rotation away from lc_serve_user_0001")
	// The rotation logs its end just after the DROP ROLE the condition above
	// sees, so the line may come a moment later.
	waitFor(t, func() bool { return strings.Contains(logs.String(), "scheduled rotation done") },
		"the scheduled rotation's closing log line")
}

// Two entries of one server database that read one credential source (a
// session-mode and a transaction-mode pool) share one role lifecycle:
// setup and rotate act on it once. Run once per entry, rotate made a role,
// wrote it, and at the second entry made another and retired the first.
func TestRotateOnceForEntriesSharingACredential(t *testing.T) {
	db := newLCDB(t, "lc_shared")
	verifier, err := auth.NewSCRAMVerifier(appPass, 4096)
	must(t, err)
	text := fmt.Sprintf(`upstream: {host: 127.0.0.1, port: %d, sslmode: disable}
databases:
  %[2]s: {owner_role: %[3]s, credentials: {path: %[4]s, poll_interval: 1s}}
  %[2]s_tx: {dbname: %[2]s, owner_role: %[3]s, pool_mode: transaction, credentials: {path: %[4]s, poll_interval: 1s}}
clients:
  - {user: %[5]s, password_verifier: "%[6]s"}
rotation: {role_prefix: %[7]s}
`, cluster.Port, db.name, db.owner, db.credPath, appUser, verifier, db.prefix)
	cfg := filepath.Join(t.TempDir(), "pgrotate.yaml")
	must(t, os.WriteFile(cfg, []byte(text), 0o600))
	for _, cmd := range []string{"setup", "rotate"} {
		out, code := runPgrotate(t, cmd, "-config", cfg, "-admin-url", cluster.AdminURL("postgres"))
		if code != 0 || !strings.Contains(out, db.name+"_tx: same database, owner role and credential source as "+db.name) {
			t.Fatalf("pgrotate %s: exit %d\n%s", cmd, code, out)
		}
	}
	if got := execRoles(t, db.owner, db.prefix); fmt.Sprint(got) != fmt.Sprint([]string{db.prefix + "_0002"}) {
		t.Fatalf("executing roles after setup and one rotate: %v; want only %s_0002", got, db.prefix)
	}
}

// Objects a migration may create beyond tables and functions (a collation,
// a conversion, an operator, extended statistics, a text search
// configuration and dictionary, a large object, a publication, a foreign
// server) are reported by check when they escaped the owner, and setup
// -reassign-objects moves them.
func TestSetupMovesEveryKindOfObject(t *testing.T) {
	db := newLCDB(t, "lc_kinds")
	must(t, cluster.Exec(ctxT(t), db.name, `
CREATE TABLE measures (a int, b int);
CREATE STATISTICS measures_ab ON a, b FROM measures;
CREATE COLLATION my_coll FROM "C";
CREATE CONVERSION my_conv FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
CREATE FUNCTION int_near(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1 - $2) < 2';
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int_near);
CREATE TEXT SEARCH DICTIONARY my_dict (TEMPLATE = simple);
CREATE TEXT SEARCH CONFIGURATION my_config (COPY = pg_catalog.english);
SELECT lo_create(424242);
CREATE PUBLICATION my_pub;
CREATE FOREIGN DATA WRAPPER my_fdw;
CREATE SERVER my_server FOREIGN DATA WRAPPER my_fdw;`))
	var out syncBuffer
	l := db.lifecycle(t, &out)
	res, err := l.Setup(ctxT(t), false)
	must(t, err)
	kinds := map[string]bool{}
	for _, o := range res.NotOwned {
		kinds[o.Kind] = true
	}
	for _, k := range []string{"collation", "conversion", "operator", "statistics", "text search configuration",
		"text search dictionary", "large object", "publication", "server"} {
		if !kinds[k] {
			t.Errorf("setup did not report the %s owned by postgres: %+v", k, res.NotOwned)
		}
	}
	out = syncBuffer{}
	if _, err := l.Setup(ctxT(t), true); err != nil {
		t.Fatalf("setup -reassign-objects: %v\n%s", err, out.String())
	}
	out = syncBuffer{}
	_, err = l.Setup(ctxT(t), true)
	must(t, err)
	assertLines(t, out.String(), "already done: lc_kinds_owner owns every object in lc_kinds")
}
