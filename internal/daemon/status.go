package daemon

import (
	"time"

	"github.com/pgrotate/pgrotate/proxy"
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
	Generations        []proxy.GenerationStatus `json:"generations"`
}

// Status returns a snapshot of every database.
func (d *Daemon) Status() Status {
	st := Status{Ready: true}
	pools := d.proxy.Status()
	for _, db := range d.dbs {
		ms := db.manager.Stats()
		gen, ok := db.manager.Current()
		if !ok {
			st.Ready = false
		}
		ps := pools[db.cfg.Name]
		st.Databases = append(st.Databases, DatabaseStatus{
			Name:               db.cfg.Name,
			PoolMode:           string(db.cfg.PoolMode),
			CurrentRole:        ms.Role,
			Generation:         ms.Generation,
			PromotedAt:         gen.PromotedAt,
			PendingRole:        ms.PendingRole,
			ValidationFailures: ms.ValidationFailures,
			LastFailure:        ms.LastFailure,
			Clients:            ps.Clients,
			Generations:        ps.Generations,
		})
	}
	return st
}
