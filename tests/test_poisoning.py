"""bench/poisoning.py at a small scale: a poisoner among honest users changes nothing.

Ten honest users label the fitting half of flower_photos' four known species; in the second
case a poisoner also labels 60 sunflowers "rose". The check for users whose labels everyone else
contradicts (model_training/retrain.py) must leave the poisoner out, and the probe's answers
must be those of the honest case. Two retrainings: a few minutes.
"""

from __future__ import annotations

import pytest
from conftest import SHARED, run_bench, table_cells

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not (SHARED / "data" / "flower_photos").is_dir(), reason="no ../shared/data/flower_photos"
)
def test_a_poisoner_among_honest_users_changes_nothing() -> None:
    output = run_bench(
        "poisoning",
        *("--data", str(SHARED / "data"), "--users", "10", "--poison", "60"),
        *("--cases", "honest,mixed"),
        timeout=1800,
    )
    rows = {
        cells[0]: cells
        for line in output.splitlines()
        if line.startswith("| honest") or line.startswith("| mixed")
        for cells in [table_cells(line)]
    }
    # case | labels | users left out | promoted | probe top-1 | sunflowers | sunflowers as rose
    assert rows["honest"][2] == "none"
    assert rows["mixed"][2] == "[666]"
    assert int(rows["mixed"][1]) == int(rows["honest"][1]) + 60
    for column in (4, 5, 6):  # the poisoner's photos weigh nothing: the same answers
        honest, mixed = (float(rows[case][column].rstrip("%")) for case in ("honest", "mixed"))
        assert abs(honest - mixed) <= 2.0, (column, honest, mixed)
