"""A Python app's steady load through pgrotate, for the rotation tests.

Run by integration/drivers_test.go as
    python3 psycopg_load.py <url> <owner role> <clients>
Each client is a psycopg 3 connection of its own, kept open for the whole run,
running transactions as psycopg does by default (it opens them itself) with
every statement prepared on the server (prepare_threshold=0). It prints
"ready" once every client has committed a transaction, runs until its stdin
closes, then prints "ok <transactions>" and exits 0 if none failed.
"""
import sys
import threading

import psycopg

URL, OWNER, CLIENTS = sys.argv[1], sys.argv[2], int(sys.argv[3])
stop = threading.Event()
lock = threading.Lock()
committed = [0]
failures = []
first = threading.Barrier(CLIENTS + 1)


def client(i):
    try:
        with psycopg.connect(URL, prepare_threshold=0) as c:
            n = 0
            while not stop.is_set():
                c.execute("INSERT INTO drv_counter VALUES (%s, 1) "
                          "ON CONFLICT (client) DO UPDATE SET n = drv_counter.n + 1", (1000 + i,))
                who = c.execute("SELECT current_user, %s::int", (n,)).fetchone()[0]
                assert who == OWNER, who
                c.commit()
                n += 1
                if n == 1:
                    first.wait()
            with lock:
                committed[0] += n
    except Exception as e:  # reported at the end, with the client's number
        with lock:
            failures.append("client %d: %r" % (i, e))
        first.abort()


threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
for t in threads:
    t.start()
try:
    first.wait()
    print("ready", flush=True)
    sys.stdin.read()
except threading.BrokenBarrierError:
    pass  # a client failed before the load was ready
stop.set()
for t in threads:
    t.join()
for f in failures:
    print(f)
if failures:
    sys.exit(1)
print("ok", committed[0])
