package daemon

import (
	"time"

	"github.com/pgrotate/pgrotate/proxy"
	"github.com/pgrotate/pgrotate/rotation"
)

// Status is what /status reports: per database, the current executing role
// and generation, and per generation its server connections and whether it
// has drained (no server connection left: the role is safe to retire).
type Status struct {
	Ready     bool             `json:"ready"`
	Databases []DatabaseStatus `json:"databases"`
}

// DatabaseStatus is the rotation and pool state of one database.
type DatabaseStatus struct {
	Name               string                   `json:"name"`
	PoolMode           string                   `json:"pool_mode"`
	CurrentRole        string                   `json:"current_role"`
	Generation         uint64                   `json:"generation"`
	PromotedAt         time.Time                `json:"promoted_at"`
	PendingRole        string                   `json:"pending_role,omitempty"`
	ValidationFailures uint64                   `json:"validation_failures"`
	LastFailure        string                   `json:"last_failure,omitempty"`
	Clients            int                      `json:"clients"`
	Waiting            int                      `json:"waiting"`
	Generations        []proxy.GenerationStatus `json:"generations"`
}

// Status returns a snapshot of every database.
func (d *Daemon) Status() Status {
	st := Status{Ready: true}
	// Each manager is read before the pools, and the pools' generations are
	// labelled as of the generation it reported as current (GenerationsAsOf): a
	// promotion between the two reads must not show the old generation as
	// current and the new role's as missing, which read as "every older
	// generation drained" while the old role still had sessions.
	stats := make([]rotation.ManagerStats, len(d.dbs))
	gens := make([]rotation.Generation, len(d.dbs))
	for i, db := range d.dbs {
		stats[i] = db.manager.Stats()
		var ok bool
		if gens[i], ok = db.manager.Current(); !ok {
			st.Ready = false
		}
	}
	pools := d.proxy.Status()
	for i, db := range d.dbs {
		ms, ps := stats[i], pools[db.cfg.Name]
		st.Databases = append(st.Databases, DatabaseStatus{
			Name:               db.cfg.Name,
			PoolMode:           string(db.cfg.PoolMode),
			CurrentRole:        gens[i].Cred.Username,
			Generation:         gens[i].N,
			PromotedAt:         gens[i].PromotedAt,
			PendingRole:        ms.PendingRole,
			ValidationFailures: ms.ValidationFailures,
			LastFailure:        ms.LastFailure,
			Clients:            ps.Clients,
			Waiting:            ps.Waiting,
			Generations:        proxy.GenerationsAsOf(ps.Generations, gens[i].N),
		})
	}
	markRetirable(st.Databases)
	return st
}

// markRetirable says which drained generations' roles may be retired: a
// role is one login for the whole process, shared by every database whose
// credential names it.
func markRetirable(dbs []DatabaseStatus) {
	gens := make([][]proxy.GenerationStatus, len(dbs))
	current := make([]string, len(dbs))
	for i, db := range dbs {
		gens[i], current[i] = db.Generations, db.CurrentRole
	}
	proxy.MarkRetirable(gens, current)
}
