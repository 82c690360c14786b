"""What a Python app does through pgrotate in transaction mode, with psycopg 3.

Run by integration/drivers_test.go as
    python3 psycopg_check.py <url> <owner role> <threads>
Every thread is a client of its own; there are more of them than server
connections. prepare_threshold=0 makes psycopg prepare every statement as a
named server-side statement (_pg3_0, _pg3_1, ...), as it does by default from
a statement's fifth run. Prints "ok" and exits 0 when every check held.
"""
import sys
import threading

import psycopg

URL, OWNER, THREADS = sys.argv[1], sys.argv[2], int(sys.argv[3])


def client(i):
    zone = "Asia/Tokyo" if i % 2 == 0 else "America/New_York"
    with psycopg.connect(URL, prepare_threshold=0, autocommit=True, options="-c TimeZone=" + zone) as c:
        # A named statement run over and over, each run its own transaction;
        # each client keeps its own TimeZone from one server connection to the next.
        for k in range(100):
            r = c.execute("SELECT %s::int + 1, current_user, current_setting('TimeZone')", (k,)).fetchone()
            assert r == (k + 1, OWNER, zone), r
        with c.transaction():
            c.execute("CREATE TEMP TABLE py_%d (a int, b text) ON COMMIT DROP" % i)
            # executemany: a pipeline of Bind/Execute before one Sync.
            with c.cursor() as cur:
                cur.executemany("INSERT INTO py_%d VALUES (%%s, %%s)" % i, [(j, str(j)) for j in range(50)])
            with c.cursor().copy("COPY py_%d (a, b) FROM STDIN" % i) as copy:
                for j in range(100):
                    copy.write_row((j, "c%d" % j))
            assert c.execute("SELECT count(*) FROM py_%d" % i).fetchone()[0] == 150
            with c.cursor().copy("COPY (SELECT a FROM py_%d ORDER BY a LIMIT 3) TO STDOUT" % i) as copy:
                assert len(list(copy.rows())) == 3
            # A server-side cursor, fetched in pieces.
            with c.cursor(name="cur_%d" % i) as cur:
                cur.execute("SELECT g FROM generate_series(1, 1000) g")
                total = 0
                while rows := cur.fetchmany(100):
                    total += sum(r[0] for r in rows)
                assert total == 500500, total
        # An explicit pipeline of statements.
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 2", (j,)) for j in range(30)]
        assert [cur.fetchone()[0] for cur in curs] == [j * 2 for j in range(30)]
        # An error ends the transaction; the connection goes on.
        try:
            with c.transaction():
                c.execute("SELECT 1/0")
            raise AssertionError("no division error")
        except psycopg.errors.DivisionByZero:
            pass
        # Changing the role is refused, also with the role as a parameter.
        for _ in range(2):
            for sql, params in [("SELECT set_config('role', %s, false)", ("none",)), ("SET ROLE NONE", None)]:
                try:
                    c.execute(sql, params)
                    raise AssertionError(sql + " not refused")
                except psycopg.errors.InsufficientPrivilege:
                    pass
        assert c.execute("SELECT current_user").fetchone()[0] == OWNER
    # psycopg's default: every statement inside a transaction it opens. After
    # a failed transaction psycopg empties its statement cache with
    # DEALLOCATE ALL, sent inside the next transaction, and prepares again.
    with psycopg.connect(URL, prepare_threshold=0) as c:
        for k in range(3):
            assert c.execute("SELECT %s::int * 3", (k,)).fetchone()[0] == k * 3
            try:
                c.execute("SELECT 1/0")
                raise AssertionError("no division error")
            except psycopg.errors.DivisionByZero:
                c.rollback()
            assert c.execute("SELECT %s::int * 3", (k,)).fetchone()[0] == k * 3
            c.commit()
    # More distinct statements than psycopg's cache holds (prepared_max):
    # psycopg deallocates the oldest with DEALLOCATE _pg3_<n>, a name only
    # pgrotate knows, and prepares it again when it comes back.
    for autocommit in (True, False):
        with psycopg.connect(URL, prepare_threshold=0, autocommit=autocommit) as c:
            c.prepared_max = 3
            for k in range(4):
                for j in range(8):
                    assert c.execute("SELECT %%s::int + %d" % j, (k,)).fetchone()[0] == k + j
                if not autocommit:
                    c.commit()


failures = []


def run(i):
    try:
        client(i)
    except Exception as e:  # reported below, with the client's number
        failures.append("client %d: %r" % (i, e))


threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for f in failures:
    print(f)
if failures:
    print("%d clients failed" % len(failures))
    sys.exit(1)
print("ok")
