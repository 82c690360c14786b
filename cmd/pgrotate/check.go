package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/proxy"
	"github.com/pgrotate/pgrotate/rotation"
)

// runCheck validates the config and every credential source, logs in with
// each current credential as serve would, and reports ownership drift and
// executing roles. It exits 1 when anything needs attention.
func runCheck(ctx context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.err)
	path := fs.String("config", "pgrotate.yaml", "config file")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	only := fs.String("database", "", "only this database (a key of databases:); default all")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		return fail(io.err, err)
	}
	dbs, err := selectDatabases(cfg, *only)
	if err != nil {
		return fail(io.err, err)
	}
	reports := make([]*rotation.CheckReport, 0, len(dbs))
	attention := false
	for _, db := range dbs {
		r := checkDatabase(ctx, cfg, db)
		attention = attention || r.NeedsAttention()
		reports = append(reports, r)
	}
	if *asJSON {
		writeCheckJSON(io.out, reports, !attention)
	} else {
		writeCheckTable(io.out, reports)
	}
	if attention {
		return exitFailure
	}
	return exitOK
}

// checkDatabase builds one database's report; failures to read the
// credential or to log in are problems in the report, not errors.
func checkDatabase(ctx context.Context, cfg *configs.Config, db *configs.Database) *rotation.CheckReport {
	r := &rotation.CheckReport{Database: db.Name, Owner: db.OwnerRole}
	cred, err := rotation.Read(db.Credentials.Path, rotation.Format(db.Credentials.Format))
	if err != nil {
		r.Problem("%v", err)
		return r
	}
	r.CurrentRole = cred.Username
	conn, err := connectAs(ctx, cfg, db, cred)
	if err != nil {
		r.Problem("logging in as %s: %v", cred.Username, err)
		return r
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := rotation.Inspect(ctx, conn, r, cfg.Rotation.RolePrefix, cfg.Rotation.KeepPrevious); err != nil {
		r.Problem("%v", err)
	}
	return r
}

// connectAs logs in exactly as serve's server connections do.
func connectAs(ctx context.Context, cfg *configs.Config, db *configs.Database, cred rotation.Credential) (*pgx.Conn, error) {
	up, err := proxy.NewUpstream(cfg.Upstream, db)
	if err != nil {
		return nil, err
	}
	cc, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("preparing the connection: %w", err)
	}
	cc.Config = *up.Config(cred)
	return pgx.ConnectConfig(ctx, cc)
}

// writeCheckJSON prints {"ok": …, "databases": […]}.
func writeCheckJSON(w io.Writer, reports []*rotation.CheckReport, ok bool) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct {
		OK        bool                    `json:"ok"`
		Databases []*rotation.CheckReport `json:"databases"`
	}{ok, reports})
}

// writeCheckTable prints each report as readable tables.
func writeCheckTable(w io.Writer, reports []*rotation.CheckReport) {
	for _, r := range reports {
		fmt.Fprintf(w, "database %s (owner role %s)\n", r.Database, r.Owner)
		if r.SessionUser != "" {
			fmt.Fprintf(w, "  current credential: %s; session_user %s, current_user %s, acts as owner: %s\n",
				r.CurrentRole, r.SessionUser, r.CurrentUser, yesNo(r.ActsAsOwner))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(r.Roles) > 0 {
			fmt.Fprintln(tw, "  ROLE\tCURRENT\tLOGIN\tINHERIT\tSESSIONS")
			for _, ro := range r.Roles {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\n", ro.Name, yesNo(ro.Current), yesNo(ro.Login), yesNo(ro.Inherit), ro.Sessions)
			}
		}
		if len(r.NotOwned) > 0 {
			fmt.Fprintf(tw, "  OBJECT NOT OWNED BY %s\tKIND\tOWNER\n", r.Owner)
			for _, o := range r.NotOwned {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", o.Name, o.Kind, o.Owner)
			}
		}
		_ = tw.Flush()
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  ! %s\n", p)
		}
		status := "ok"
		if r.NeedsAttention() {
			status = "NEEDS ATTENTION"
		}
		fmt.Fprintf(w, "  status: %s\n\n", status)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
