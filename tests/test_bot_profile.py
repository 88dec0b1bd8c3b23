"""bench/bot_profile.py: samples sorted into the steps of a photo's path, and a small run of it."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import load_bench


def frame(function: str, file: str) -> str:
    return f"{function} ({file}:1)"


def test_the_deepest_frame_that_names_a_step_decides() -> None:
    bench = load_bench("bot_profile")
    worker = [frame("_bootstrap", "threading.py"), frame("answers", "model_training/classifier.py")]
    assert bench.step_of([*worker, frame("invoke", "ai_edge_litert/interpreter.py")]) == (
        "backbone (LiteRT)"
    )
    # numpy inside the views is the views' time, Pillow inside the decoder the decoder's.
    assert bench.step_of([*worker, frame("view_images", "views.py"), frame("take", "numpy")]) == (
        "views"
    )
    decode = [frame("decode_photo", "model_training/photos.py"), frame("resize", "PIL/Image.py")]
    assert bench.step_of(decode) == "decode (Pillow)"
    commit = [frame("store_answer", "bot/handlers/answering.py"), frame("do_commit", "sqlalchemy")]
    assert bench.step_of(commit).startswith("database")
    # The fake server's threads and the sender are the bench's, whatever they call.
    thumbnails = [frame("user_photo", "fake_telegram/server.py"), frame("save", "PIL/Image.py")]
    assert bench.step_of(thumbnails) == bench.BENCH_SIDE
    assert bench.step_of([frame("_find_and_load", "<frozen importlib>")]) == bench.START_UP
    assert bench.step_of([frame("mystery", "elsewhere.py")]) == bench.OTHER


def test_raw_samples_are_counted_per_step(tmp_path: Path) -> None:
    bench = load_bench("bot_profile")
    raw = tmp_path / "samples.txt"
    litert = frame("invoke", "ai_edge_litert/interpreter.py")
    raw.write_text(f"{frame('run', 'a.py')};{litert} 7\n{frame('do_execute', 'sqlalchemy')} 3\n")
    steps = bench.read_samples(raw)
    assert steps == {"backbone (LiteRT)": 7, "database (SQLAlchemy, SQLite)": 3}
    table = bench.table(steps, photos=5)
    assert "| backbone (LiteRT) | 70.0% | 7 |" in table
    assert "| **the bot, 5 photos answered** | 100% | 10 |" in table


@pytest.mark.skipif(
    shutil.which("py-spy", path=str(Path(sys.executable).parent)) is None,
    reason="py-spy is in the dev extra",
)
def test_a_small_profile_of_the_bot_names_the_backbone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """3 photos/s for 5 s through `flowerbot bot` under py-spy; the full run is
    `python bench/bot_profile.py --rate 8 --seconds 30`."""
    bench = load_bench("bot_profile")
    assert bench.main(["--rate", "3", "--seconds", "5", "--drain", "30"]) == 0
    out = capsys.readouterr().out
    shares = dict(re.findall(r"^\| ([^|*]+?) \| ([\d.]+)% \| \d+ \|$", out, re.MULTILINE))
    assert float(shares["backbone (LiteRT)"]) > 5, out
    assert "database (SQLAlchemy, SQLite)" in shares, out
    assert sum(float(share) for share in shares.values()) == pytest.approx(100, abs=0.6)
    answered = re.search(r"the bot, (\d+) photos answered", out)
    assert answered is not None and int(answered[1]) >= 5, out
