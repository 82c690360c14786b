# Django settings for an application behind pgrotate: add to settings.py.
#
# The application logs in to pgrotate with one stable user and password;
# pgrotate logs in to PostgreSQL as the current executing role and makes
# every server session act as the owner role (startup option
# -c role=bookstore_owner). So no SET ROLE hook is needed anymore: remove
# django-postgresql-setrole (or any connection_created signal that runs
# SET ROLE). Migrations create tables owned by the owner role, which every
# future executing role can use.
import os

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        # pgrotate, not PostgreSQL: the sidecar in the same pod.
        "HOST": "127.0.0.1",
        "PORT": "6432",
        "NAME": "bookstore",  # the database name in pgrotate.yaml
        "USER": "bookstore_app",  # a client in pgrotate.yaml
        # Never changes when the database role rotates.
        "PASSWORD": os.environ["APP_DB_PASSWORD"],
        # Session pooling (pool_mode: session, the default). Each Django
        # connection holds one server connection for its whole life. After a
        # rotation pgrotate moves it to the new executing role between two
        # transactions; a connection that cannot move (LISTEN, temporary
        # tables, WITH HOLD cursors, advisory locks) keeps the old role
        # until it closes or drain_timeout ends it. A finite CONN_MAX_AGE
        # bounds that: Django reconnects at the first request after 60 s.
        "CONN_MAX_AGE": 60,
        # Check a reused connection before a request uses it, so one that
        # was closed meanwhile (a pgrotate restart, or drain_timeout after a
        # rotation) is replaced instead of failing the request.
        "CONN_HEALTH_CHECKS": True,
    }
}

# Transaction pooling (pool_mode: transaction): a server connection is lent
# for one transaction only, so nothing may outlive a transaction.
#
# DATABASES["default"].update({
#     # Django's server-side cursors (QuerySet.iterator()) stay open after
#     # the transaction in autocommit mode, on a server connection that is
#     # by then lent to another client: turn them off.
#     "DISABLE_SERVER_SIDE_CURSORS": True,
#     # Connections to pgrotate are cheap to keep; the server connections
#     # behind them are shared anyway. None keeps them open indefinitely.
#     "CONN_MAX_AGE": None,
#     "CONN_HEALTH_CHECKS": True,
# })
#
# In transaction mode, also avoid session state outside a transaction: SET
# without LOCAL, advisory locks (pg_advisory_lock), LISTEN, temporary
# tables kept across transactions.
