"""bench/species.py at its own size (about a minute): five users teach "tulip" through the fake
Bot API, the admin approves it and retrains, and the candidate names the tulips nobody taught."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SHARED, run_bench, table_cells

pytestmark = pytest.mark.slow


def test_users_teach_a_species_that_the_candidate_then_names(tmp_path: Path) -> None:
    output = run_bench(
        "species", "--data", str(SHARED / "data" / "flower_photos"), cwd=tmp_path, timeout=900
    )
    assert "Approved: Tulip." in output
    assert "New species Tulip learnt by the candidate" in output
    probe = {
        cells[0]: cells[1:]
        for line in output.splitlines()
        if line.startswith(("| shipped model", "| after retraining"))
        for cells in [table_cells(line)]
    }
    assert probe["shipped model"][0] == probe["after retraining"][0] == "87"
    assert probe["shipped model"][1] == "0.0%"  # no Oxford species is a tulip
    assert float(probe["after retraining"][1].rstrip("%")) >= 70
    before, after = (
        float(x) for x in re.search(r"Base held-out top-1: ([\d.]+)% -> ([\d.]+)%", output).groups()
    )
    assert after >= before - 1.0
    assert output.rstrip().endswith("goals met")
