"""The benchmarks' CPU accounting by process group (bench/process_cpu.py)."""

from __future__ import annotations

import runpy
import subprocess
import sys

from sqlalchemy import text

from devtools.process import ROOT

cpu_by_group = runpy.run_path(str(ROOT / "bench" / "process_cpu.py"))["cpu_by_group"]

GROUPS = {"burners": ("process-cpu-burner",), "others": ("no-such-command-line",)}
BURN_THEN_WAIT = """
import time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("burnt", flush=True)
time.sleep(60)
"""


def test_a_child_counts_for_its_group_and_no_other(db):
    database = db.engine.url.database
    before = cpu_by_group(database, GROUPS | {"postgres": ()})
    child = subprocess.Popen(
        [sys.executable, "-c", BURN_THEN_WAIT, "process-cpu-burner"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "burnt"
        with db.engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM generate_series(1, 3000000)"))
            after = cpu_by_group(database, GROUPS | {"postgres": ()})
    finally:
        child.kill()
        child.wait()
    assert after["burners"] - before["burners"] >= 0.25
    assert after["postgres"] > before["postgres"]  # this database's backend
    assert after["others"] == before["others"] == 0.0
    assert cpu_by_group("no_such_database", {"postgres": ()})["postgres"] == 0.0
