"""What the exactly-once record costs a write (docs/design.md, "Writes are applied exactly once").

    python benchmarks/bench_write_once.py sqlite 40
    python benchmarks/bench_write_once.py postgresql://postgres@127.0.0.1:5432/postgres 40

A/B in one process: Store.write with the applied_writes record (A) and with it switched off (B),
alternating blocks of 100 writes (4 keys x 5 points + heartbeat), median per write."""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import expbook
from expbook.store import RunSpec, WriteBatch
from expbook.store.chunks import Points
from expbook.store.sql import SqlStore

sys.path.insert(0, str(Path(__file__).parent))
from common import fresh_postgres_database

url = sys.argv[1]
url = tempfile.mkdtemp() + "/s.db" if url == "sqlite" else fresh_postgres_database(url)
store = expbook.open_store(url)
run = store.create_run(RunSpec(name="b")).id
step = 0


def batch():
    global step
    pts = {}
    for k in ("a", "b", "c", "d"):
        p = Points()
        for s in range(step, step + 5):
            p.append(s, 1.0, 1.0, None)
        pts[k] = p
    step += 5
    return WriteBatch(points=pts, heartbeat=time.time())


real = SqlStore._record_write


def off(self, connection, pk, batch_id):
    return True


res = {"with": [], "without": []}
for _ in range(50):
    store.write(run, batch())
for i in range(int(sys.argv[2])):
    for name, fn in (
        (("with", real), ("without", off)) if i % 2 == 0 else (("without", off), ("with", real))
    ):
        SqlStore._record_write = fn
        t = time.perf_counter()
        for _ in range(100):
            store.write(run, batch())
        res[name].append((time.perf_counter() - t) / 100)
print(
    json.dumps({k: round(statistics.median(v) * 1e6, 1) for k, v in res.items()}), "us per write"
)
