"""`flowerbot identify`: top-5 per photo as text or JSON; bad input named, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, SHIPPED_MODEL


def flowerbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_training.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_identify_json_names_the_right_species(sample_photos) -> None:
    result = flowerbot(
        "identify", "--json", "--model", str(SHIPPED_MODEL), *(str(p) for p, _, _ in sample_photos)
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["file"] for a in answers] == [str(p) for p, _, _ in sample_photos]
    correct = 0
    for answer, (_, label, name) in zip(answers, sample_photos, strict=True):
        top5 = answer["top5"]
        assert len(top5) == 5
        confidences = [s["confidence"] for s in top5]
        assert confidences == sorted(confidences, reverse=True)
        assert 0 < sum(confidences) <= 1.0 + 1e-6
        assert set(top5[0]) == {"species", "index", "confidence"}
        correct += top5[0]["index"] == label and top5[0]["species"] == name
    assert correct >= 13, f"only {correct} of {len(sample_photos)} sample photos right"


def test_identify_text_answers_good_photos_and_names_bad_ones(tmp_path, sample_photos) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("just text")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(sample_photos[0][0].read_bytes()[:2000])
    good = sample_photos[0][0]
    result = flowerbot(
        "identify",
        str(empty),
        str(good),
        str(not_image),
        str(truncated),
        str(tmp_path / "missing.jpg"),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    # TensorFlow's C++ start-up may log to stderr too; our messages are the lines naming a file.
    errors = [line for line in result.stderr.splitlines() if line.startswith(str(tmp_path))]
    assert errors == [
        f"{empty}: the file is empty",
        f"{not_image}: this is not an image format I can read",
        f"{truncated}: the image is damaged or truncated",
        f"{tmp_path / 'missing.jpg'}: no such file",
    ]
    lines = result.stdout.splitlines()
    assert lines[0] == f"{good}:"
    assert len(lines) == 6 and lines[1].lstrip().startswith("1. sunflower")
    assert lines[1].rstrip().endswith("%")
