-- Runs once, as the superuser, when the postgres container initialises an
-- empty data directory (docker-entrypoint-initdb.d).

-- The owner: owns the database and every object in it, and cannot log in.
CREATE ROLE bookstore_owner NOLOGIN;
CREATE DATABASE bookstore OWNER bookstore_owner;

-- Only roles granted CONNECT may connect. PostgreSQL checks CONNECT for the
-- role that logs in, before pgrotate's startup option makes the session act
-- as the owner, so each executing role needs its own GRANT CONNECT.
REVOKE CONNECT ON DATABASE bookstore FROM PUBLIC;

-- The first executing role: logs in, has no privileges of its own
-- (NOINHERIT: a session that escapes the owner role can do nothing), and
-- may act as the owner. pgrotate logs in as it with -c role=bookstore_owner;
-- ALTER ROLE ... SET role makes a direct login (psql, a migration run by
-- hand) act as the owner too.
CREATE ROLE bookstore_user_0001 LOGIN NOINHERIT PASSWORD 'compose-executing-0001';
GRANT bookstore_owner TO bookstore_user_0001;
GRANT CONNECT ON DATABASE bookstore TO bookstore_user_0001;
ALTER ROLE bookstore_user_0001 SET role = bookstore_owner;
