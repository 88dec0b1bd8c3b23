"""Answers: the verdict rules on their own, then the shipped classifier's answers to real photos
(a flower, the same flower sent too small, and no flower at all)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

from model_training.abstention import MIN_PHOTO_SIDE, Verdict, VerdictRules
from model_training.albums import Combine, Known, combine, combined
from model_training.classifier import TOP_K, Answer, SpeciesScore
from model_training.photos import INPUT_SIZE, decode_photo, read_photo

RULES = VerdictRules(
    not_a_flower_below=0.7, unsure_below=0.5, min_photo_side=160, unknown_species_below=-20.0
)
ASTRONAUT = Path(skimage.data.__file__).parent / "astronaut.png"


@pytest.mark.parametrize(
    ("confidence", "flower_score", "short_side", "species_score", "expected"),
    [
        (0.9, 0.9, 500, -1.0, Verdict.SURE),
        (0.5, 0.7, 160, -20.0, Verdict.SURE),  # every bound is inclusive
        (0.49, 0.9, 500, -1.0, Verdict.NOT_SURE),
        (0.9, 0.9, 500, -20.1, Verdict.UNKNOWN_SPECIES),
        (0.1, 0.9, 500, -30.0, Verdict.UNKNOWN_SPECIES),  # unknown species wins over not sure
        (0.9, 0.69, 500, -1.0, Verdict.NOT_A_FLOWER),
        (0.1, 0.1, 500, -1.0, Verdict.NOT_A_FLOWER),  # not a flower wins over not sure
        (0.9, 0.1, 500, -30.0, Verdict.NOT_A_FLOWER),  # ... and over unknown species
        (0.9, 0.9, 159, -1.0, Verdict.TOO_SMALL),
        (0.1, 0.9, 100, -1.0, Verdict.TOO_SMALL),  # too small wins over not sure
        (0.9, 0.1, 100, -1.0, Verdict.TOO_SMALL),  # ... and over not a flower
        (0.9, 0.9, 100, -30.0, Verdict.TOO_SMALL),  # ... and over unknown species
        (0.1, 0.1, 1, -30.0, Verdict.TOO_SMALL),
    ],
)
def test_verdict_rules_in_order(
    confidence: float, flower_score: float, short_side: int, species_score: float, expected: Verdict
) -> None:
    assert RULES.verdict(confidence, flower_score, short_side, species_score) is expected


def test_the_rules_order_is_size_flower_species_confidence() -> None:
    assert [(v, score) for v, score, _ in RULES.in_order()] == [
        (Verdict.TOO_SMALL, "short_side"),
        (Verdict.NOT_A_FLOWER, "flower_score"),
        (Verdict.UNKNOWN_SPECIES, "species_score"),
        (Verdict.NOT_SURE, "confidence"),
    ]


def test_rules_from_the_model_folders_thresholds() -> None:
    rules = VerdictRules.from_thresholds(
        {
            "not_a_flower_below": 0.69,
            "unsure_below": "0.7",
            "min_photo_side": 200.0,
            "unknown_species_below": "-21.5",
        }
    )
    assert rules == VerdictRules(
        not_a_flower_below=0.69, unsure_below=0.7, min_photo_side=200, unknown_species_below=-21.5
    )
    assert isinstance(rules.min_photo_side, int) and isinstance(rules.unsure_below, float)
    assert isinstance(rules.unknown_species_below, float)


def test_folders_without_the_unknown_species_cut_never_say_unknown_species() -> None:
    old = VerdictRules.from_thresholds({"not_a_flower_below": 0.69, "unsure_below": 0.7})
    assert old.verdict(0.9, 0.9, 500, species_score=-1e9) is Verdict.SURE
    assert old.verdict(0.9, 0.9, 500) is Verdict.SURE


def test_models_trained_before_the_size_rule_get_the_default() -> None:
    old = VerdictRules.from_thresholds({"not_a_flower_below": 0.69, "unsure_below": 0.7})
    assert old.min_photo_side == MIN_PHOTO_SIDE
    assert old.verdict(0.9, 0.9, MIN_PHOTO_SIDE - 1) is Verdict.TOO_SMALL
    assert old.verdict(0.9, 0.9, MIN_PHOTO_SIDE) is Verdict.SURE
    with pytest.raises(KeyError):
        VerdictRules.from_thresholds({"unsure_below": 0.7})


def test_the_shipped_model_carries_its_rules(classifier) -> None:
    thresholds = classifier.artifact.metadata.thresholds
    assert classifier.rules == VerdictRules.from_thresholds(thresholds)
    assert 0 < classifier.rules.unsure_below < 1
    # The flower score is a log-odds and the species score minus a distance, both from
    # honesty.npz, which the shipped folder carries.
    assert -10 < classifier.rules.not_a_flower_below < 10
    assert -1e3 < classifier.rules.unknown_species_below < 0
    assert classifier.artifact.honesty is not None


def shrunk(path: Path, short_side: int) -> bytes:
    """The photo re-encoded with its short side `short_side` pixels, as a thumbnail is sent."""
    image = Image.open(path).convert("RGB")
    scale = short_side / min(image.size)
    image = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def check_top5(answer: Answer, n_classes: int) -> None:
    assert len(answer.top5) == TOP_K
    confidences = [s.confidence for s in answer.top5]
    assert confidences == sorted(confidences, reverse=True)
    assert 0 < sum(confidences) <= 1 + 1e-6
    assert len({s.index for s in answer.top5}) == TOP_K
    assert all(0 <= s.index < n_classes for s in answer.top5)


def test_a_clear_flower_photo_is_named_for_sure(classifier, sample_photos) -> None:
    path, label, name = sample_photos[0]
    answer = classifier.identify(path.read_bytes())
    photo = read_photo(path)
    assert answer.verdict is Verdict.SURE
    assert (answer.top5[0].index, answer.top5[0].species) == (label, name)
    assert answer.top5[0].confidence >= classifier.rules.unsure_below
    assert answer.flower_score >= classifier.rules.not_a_flower_below
    check_top5(answer, len(classifier.class_names))
    assert answer.photo_size == (photo.width, photo.height)
    np.testing.assert_array_equal(answer.image, photo.image)
    views = len(classifier.artifact.metadata.serve_views)
    assert answer.features.shape == (views, 1280) and answer.features.dtype == np.float32
    assert answer.model_version == classifier.artifact.metadata.version
    # The top-5 are the model's probabilities, best first.
    probabilities = classifier.probabilities(photo.image[None])[0]
    assert [s.index for s in answer.top5] == list(np.argsort(-probabilities)[:TOP_K])
    np.testing.assert_allclose(
        [s.confidence for s in answer.top5], np.sort(probabilities)[::-1][:TOP_K], atol=1e-6
    )
    as_json = json.loads(json.dumps(answer.as_json()))
    assert set(as_json) == {"verdict", "model_version", "top5", "group"}
    assert as_json["verdict"] == "sure" and as_json["model_version"] == answer.model_version
    assert as_json["group"] is None  # sure of the species: no coarser answer
    assert as_json["top5"][0] == {
        "species": name,
        "index": label,
        "confidence": pytest.approx(answer.top5[0].confidence),
    }


def test_the_same_photo_sent_small_is_too_small_with_five_guesses(
    classifier, sample_photos
) -> None:
    path, _, _ = sample_photos[0]
    data = shrunk(path, 100)
    answer = classifier.identify(data)
    assert min(answer.photo_size) == 100
    assert answer.verdict is Verdict.TOO_SMALL
    check_top5(answer, len(classifier.class_names))
    assert answer.image.shape == (INPUT_SIZE, INPUT_SIZE, 3)  # still shown to the model


def test_a_photo_of_no_flower_is_not_a_flower(classifier) -> None:
    answer = classifier.identify(ASTRONAUT.read_bytes())
    assert answer.photo_size == (512, 512)
    assert answer.verdict is Verdict.NOT_A_FLOWER
    assert answer.flower_score < classifier.rules.not_a_flower_below
    check_top5(answer, len(classifier.class_names))


def test_a_batch_answers_each_photo_as_alone(classifier, sample_photos) -> None:
    path, label, _ = sample_photos[2]
    photos = [
        read_photo(path),
        decode_photo(ASTRONAUT.read_bytes()),
        decode_photo(shrunk(path, 120)),
    ]
    batch = classifier.answers(photos)
    assert [a.verdict for a in batch] == [Verdict.SURE, Verdict.NOT_A_FLOWER, Verdict.TOO_SMALL]
    assert batch[0].top5[0].index == label
    for answer, photo in zip(batch, photos, strict=True):
        (alone,) = classifier.answers([photo])
        assert [s.index for s in answer.top5] == [s.index for s in alone.top5]
        assert answer.flower_score == pytest.approx(alone.flower_score, abs=1e-5)
        assert answer.photo_size == (photo.width, photo.height)
    assert classifier.answers([]) == []


def test_mean_of_log_probabilities_favours_the_species_all_photos_agree_on() -> None:
    """Two photos: one sure of A (0.6) over B (0.4); one torn between B (0.5) and C (0.5).
    The mean says B (0.45) ahead of A (0.3); the product agrees, and both rules sum to one."""
    photos = np.array([[0.6, 0.4, 0.0], [0.0, 0.5, 0.5]])
    for rule in Combine:
        combined = combine(photos, rule)
        assert combined.argmax() == 1
        assert combined.sum() == pytest.approx(1.0)
    assert combine(photos, Combine.MEAN) == pytest.approx([0.3, 0.45, 0.25])


def test_two_agreeing_photos_are_judged_at_their_combined_confidence() -> None:
    """Photos 60% and 80% sure of the same species, each just under the unknown-species cut,
    whose score counts 50 x the log of the photo's confidence. Together they are 71% sure: at
    that confidence the mean of their species scores passes the cut (+8.4 and -6.0 points), the
    mean of their own scores does not. A photo that is no flower is left out of both."""
    rules = VerdictRules(not_a_flower_below=0.0, unsure_below=0.5, unknown_species_below=-10.0)
    photos = np.array([[0.6, 0.4], [0.8, 0.2], [0.1, 0.9]])
    verdicts = [Verdict.UNKNOWN_SPECIES, Verdict.UNKNOWN_SPECIES, Verdict.NOT_A_FLOWER]
    scores = (np.array([1.0, 1.0, -1.0]), np.array([-10.5, -10.5, 50.0]), np.array([500] * 3))
    together, verdict, used = combined(rules, photos, verdicts, *scores, 50.0)
    assert used == [0, 1]
    assert together == pytest.approx(combine(photos[:2]))
    assert together.max() == pytest.approx(0.71, abs=0.005)
    assert verdict == Verdict.SURE
    mean_of_own = combined(rules, photos, verdicts, *scores, 50.0, Known.MEAN)[1]
    assert mean_of_own == Verdict.UNKNOWN_SPECIES
    # Without an honesty model's confidence term the scores stay as they are.
    assert combined(rules, photos, verdicts, *scores, 0.0)[1] == Verdict.UNKNOWN_SPECIES


def test_an_unsure_answer_carries_its_group_in_json() -> None:
    """model_training/taxonomy.py: two dahlias hold most of the confidence."""
    answer = Answer(
        top5=[
            SpeciesScore("orange dahlia", 58, 0.45),
            SpeciesScore("pink-yellow dahlia", 59, 0.30),
            SpeciesScore("sunflower", 53, 0.10),
            SpeciesScore("rose", 73, 0.05),
            SpeciesScore("carnation", 30, 0.02),
        ],
        verdict=Verdict.NOT_SURE,
        model_version="test",
        features=np.zeros((1, 1280), np.float32),
        image=np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8),
        photo_size=(500, 400),
        flower_score=3.0,
    )
    as_json = json.loads(json.dumps(answer.as_json()))
    assert as_json["group"] == {
        "level": "genus",
        "name": "Dahlia",
        "species": ["orange dahlia", "pink-yellow dahlia"],
        "confidence": pytest.approx(0.75),
    }
    sure = Answer(**{**answer.__dict__, "verdict": Verdict.SURE})
    assert sure.as_json()["group"] is None
