# Vault agent, run next to pgrotate (a sidecar sharing the /vault/secrets
# volume). It logs in to Vault with the pod's Kubernetes service account and
# renders the executing role's credential into /vault/secrets/bookstore.json,
# which pgrotate watches.
#
# The credential comes from a static role of the database secrets engine:
# Vault owns the password of one existing role and changes it every
# rotation_period, e.g.
#   vault write database/static-roles/bookstore-executing \
#     db_name=bookstore username=bookstore_user_0001 rotation_period=24h
# The role name stays the same and only its password changes; pgrotate
# validates the new password and moves its server connections to it (a new
# generation). Create bookstore_user_0001 as docs/rotation-runbook.md
# describes: NOINHERIT, member of bookstore_owner, CONNECT on the database.

vault {
  address = "https://vault.example.internal:8200" # CHANGE
}

auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role = "bookstore-pgrotate" # CHANGE: a Vault role allowed to read the creds
    }
  }
}

template {
  source      = "/vault/config/bookstore.json.ctmpl"
  destination = "/vault/secrets/bookstore.json"
  # Readable by pgrotate (uid/gid 65532) and no one else: with a shared
  # volume in Kubernetes, set the pod's securityContext.fsGroup to 65532 so
  # the file's group is pgrotate's.
  perms = "0640"
  # The agent writes a temporary file and renames it over the destination,
  # so pgrotate never reads a half-written credential.
}
