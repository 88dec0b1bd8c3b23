"""Retrain the head from users' labels, and the promotion gate (no database here).

A candidate is the product recipe fitted again, from scratch, on the base rows the model folder
carries (model_training/artifact.BaseRows) plus one row per labelled user photo: it learns the
users' photos without drifting away from the base set, as a warm-started fine-tune did (measured
in the README). Each user's photos together weigh at most `max_photos_per_user` photos, so one
person labelling 200 sunflowers as roses counts like a handful of photos, and a user whose labels
everyone else contradicts weighs nothing (contradicted_users).

The gate measures what users meet. About a fifth of the feedback never trains: the photos whose
id, hashed with a fixed key, falls in one fifth of the hash values (held_out), so which photos
are held out does not depend on who sent which or in what order. The candidate is promoted when
it answers those photos better than the serving head by a paired test (exact McNemar, one-sided,
p < 0.05, at least 20 photos from at least 4 users) and loses at most one point of top-1 on the
base held-out set.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import keras
import numpy as np

from model_training.artifact import BaseRows, ModelArtifact
from model_training.growth import check_new_species, grown_scores, without_classes
from model_training.heldout import HOLDOUT_EVERY, held_out
from model_training.model import FEATURE_DIM, head_probabilities
from model_training.train import RowRecipe, fit_rows

# Before any candidate can be promoted: this many held-out feedback photos, from this many
# distinct users. Each user's held-out photos count at most the per-user cap, and one user alone
# never reaches MIN_HELDOUT_USERS.
MIN_HELDOUT = 20
MIN_HELDOUT_USERS = 4
SIGNIFICANCE = 0.05
MAX_BASE_DROP = 0.01  # base held-out top-1 may fall by at most one point
CHANGED_SPECIES = 3  # species listed in the report


@dataclass(frozen=True)
class LabelledPhoto:
    photo_id: int
    user_id: int  # who gave the label
    features: np.ndarray  # (serving views, dim)
    label: int


@dataclass
class RetrainRows:
    """Training rows (base first, then the feedback that trains) and the held-out feedback.
    Filled in place, one photo at a time: nothing is held twice."""

    x: np.ndarray  # (rows, dim) float16
    y: np.ndarray
    w: np.ndarray
    heldout_x: np.ndarray  # (photos, dim) float16
    heldout_y: np.ndarray
    n_feedback_train: int
    users: np.ndarray  # who labelled each feedback training row (rows after the base's)
    heldout_users: np.ndarray  # who labelled each held-out photo


def retrain_rows(
    base: BaseRows, photos: Iterable[LabelledPhoto], n_photos: int, cap: int
) -> RetrainRows:
    """Stream labelled photos (at most `n_photos`) into training and held-out rows."""
    n_base = len(base.train_y)
    x = np.empty((n_base + n_photos, FEATURE_DIM), np.float16)
    y = np.empty(n_base + n_photos, np.int64)
    x[:n_base], y[:n_base] = base.train_x, base.train_y
    users = np.empty(n_photos, np.int64)
    held_x = np.empty((n_photos // HOLDOUT_EVERY + 1, FEATURE_DIM), np.float16)
    held_y = np.empty(len(held_x), np.int64)
    held_users = np.empty(len(held_x), np.int64)
    n_train = n_held = 0
    held_per_user: Counter[int] = Counter()
    # At most n_photos: labels that arrived after they were counted wait for the next run.
    for photo in itertools.islice(photos, n_photos):
        row = photo.features.mean(axis=0)
        if held_out(photo.photo_id):
            # The gate's evidence is capped per user like training: one user's 200 labels must
            # not add up to a "significant" improvement on that user's own held-out photos.
            if held_per_user[photo.user_id] >= cap:
                continue
            held_per_user[photo.user_id] += 1
            if n_held == len(held_x):  # more held-out photos than a fifth: grow
                held_x = np.resize(held_x, (2 * len(held_x), FEATURE_DIM))
                held_y = np.resize(held_y, 2 * len(held_y))
                held_users = np.resize(held_users, 2 * len(held_users))
            held_x[n_held], held_y[n_held] = row, photo.label
            held_users[n_held] = photo.user_id
            n_held += 1
        else:
            x[n_base + n_train], y[n_base + n_train] = row, photo.label
            users[n_train] = photo.user_id
            n_train += 1
    w = np.concatenate([base.weights, user_weights(users[:n_train], cap)])
    end = n_base + n_train
    return RetrainRows(
        x[:end],
        y[:end],
        w,
        held_x[:n_held],
        held_y[:n_held],
        n_train,
        users[:n_train],
        held_users[:n_held],
    )


def user_weights(user_ids: np.ndarray, cap: int) -> np.ndarray:
    """Per-photo weights so that no user's photos add up to more than `cap` photos."""
    if not len(user_ids):
        return np.empty(0, np.float32)
    _, inverse, counts = np.unique(user_ids, return_inverse=True, return_counts=True)
    return np.minimum(1.0, cap / counts)[inverse].astype(np.float32)


def with_new_species_floor(y: np.ndarray, w: np.ndarray, first_new: int, n_base: int) -> np.ndarray:
    """Weights in which each new species' rows add up to at least the median known species'.

    The per-user cap leaves a species that three users taught the weight of 15 photos against
    55 for the median known species (347 for one with garden photos), so the head learns it
    late. Scaling the species as a whole keeps each user's share of it within the cap.
    """
    known = np.bincount(y[:n_base], weights=w[:n_base], minlength=first_new)[:first_new]
    floor = float(np.median(known[known > 0]))
    w = w.astype(np.float32, copy=True)
    for label in np.unique(y[n_base:][y[n_base:] >= first_new]):
        members = np.flatnonzero(y == label)
        total = float(w[members].sum())
        if 0 < total < floor:
            w[members] *= floor / total
    return w


# A user is judged once they have labelled this many training photos (fewer weigh little, and say
# too little about the user), and left out when the other labels contradict most of theirs.
MIN_LABELS_TO_JUDGE = 10
MAX_CONTRADICTED = 0.75
NEIGHBOURS = 10
JUDGED_PER_USER = 50  # photos sampled from a user with more
REFERENCE_ROWS = 20_000  # other users' photos sampled as neighbours (every base row is one too)


def contradicted_users(rows: RetrainRows, seed: int = 0) -> list[int]:
    """Users whose labels everyone else's contradict, e.g. one labelling sunflowers "rose".

    The per-user cap bounds one user's weight, not its direction: among honest users' photos of
    a region the base set lacks, a capped poisoner still pulls the answers there. So a label is
    checked against its photo's NEIGHBOURS nearest rows (cosine) among the base rows and other
    users' photos: it is contradicted when none of them has that label. Measured on the learning
    experiment's photos (README): a poisoner's labels are contradicted over 90% of the time; an
    honest user's 40-50% when they label all 348 real-world photos alone (only the base set to
    agree with), under 30% when four users share them. A species only this user names is no
    evidence against them. Memory and time stay bounded: at most JUDGED_PER_USER photos of a
    user against the base rows and REFERENCE_ROWS photos of others.
    """
    ids, n_labels = np.unique(rows.users, return_counts=True)
    enough = n_labels >= MIN_LABELS_TO_JUDGE
    judged, judged_counts = ids[enough], n_labels[enough]
    if not len(judged):
        return []
    rng = np.random.default_rng(seed)
    n_base = len(rows.x) - rows.n_feedback_train
    sample = np.sort(rng.choice(rows.n_feedback_train, min(REFERENCE_ROWS, len(rows.users)), False))
    reference = _unit_rows(np.concatenate([rows.x[:n_base], rows.x[n_base + sample]]))
    reference_y = np.concatenate([rows.y[:n_base], rows.y[n_base + sample]])
    labelled_by = np.concatenate([np.full(n_base, -1), rows.users[sample]])  # -1: the base set
    # Each user's rows by one sort, not a scan of every row per user (a million rows, many users).
    by_user = np.argsort(rows.users, kind="stable")
    first = np.searchsorted(rows.users[by_user], judged)
    contradicted = []
    for user, start, count in zip(judged, first, judged_counts, strict=True):
        own = by_user[start : start + count]
        if len(own) > JUDGED_PER_USER:
            own = rng.choice(own, JUDGED_PER_USER, replace=False)
        labels = rows.y[n_base + own]
        similarity = _unit_rows(rows.x[n_base + own]) @ reference.T
        similarity[:, labelled_by == user] = -np.inf
        nearest = np.argpartition(-similarity, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
        agrees = (reference_y[nearest] == labels[:, None]).any(axis=1)
        agrees |= ~np.isin(labels, reference_y[labelled_by != user])
        if 1.0 - agrees.mean() > MAX_CONTRADICTED:
            contradicted.append(int(user))
    return contradicted


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_candidate(
    serving: ModelArtifact, rows: RetrainRows, n_classes: int, seed: int = 0
) -> keras.Model:
    """The serving model's own recipe and epoch count, on base + feedback rows, from scratch.
    Starting from the serving head's weights instead was measured on bench/poisoning.py's
    honest case (README): probe top-1 84.7% against 84.9%, base held-out 92.0% against 92.8%."""
    recipe = RowRecipe.recorded(serving.metadata.recipe, serving.metadata.serve_views)
    epochs = int(serving.metadata.recipe["epochs"])
    head, _ = fit_rows(n_classes, (rows.x, rows.y, rows.w), recipe, epochs, seed)
    return head


@dataclass(frozen=True)
class Scores:
    base_right: np.ndarray  # per base held-out photo: top-1 right
    feedback_right: np.ndarray  # per held-out feedback photo
    feedback_users: np.ndarray  # who labelled each held-out feedback photo

    def summary(self) -> dict[str, object]:
        return {
            "base_heldout_top1": _mean(self.base_right),
            "base_heldout_ci": wilson(self.base_right),
            "feedback_top1": _mean(self.feedback_right),
            "feedback_ci": wilson(self.feedback_right),
            "feedback_holdout": len(self.feedback_right),
            "feedback_holdout_users": len(np.unique(self.feedback_users)),
        }


def score(head: keras.Model, base: BaseRows, rows: RetrainRows) -> Scores:
    base_probs = head_probabilities(head, base.heldout_x.astype(np.float32))
    feedback_right = _top1(head, rows.heldout_x) == rows.heldout_y
    return Scores(base.heldout_y == base_probs.argmax(axis=1), feedback_right, rows.heldout_users)


def _mean(right: np.ndarray) -> float:
    return float(right.mean()) if len(right) else 0.0


def wilson(right: np.ndarray, z: float = 1.96) -> list[float]:
    """95% Wilson interval of a proportion (sound for small samples and rates near 0 or 1)."""
    n = len(right)
    if not n:
        return [0.0, 1.0]
    p = right.mean()
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(centre - half), float(centre + half)]


def mcnemar(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """Exact one-sided McNemar test that `after` is right more often than `before` (paired), and
    the difference in top-1 with a 95% interval for paired proportions."""
    gained = int((~before & after).sum())
    lost = int((before & ~after).sum())
    n, discordant = len(before), gained + lost
    # P(at least `gained` of the discordant pairs go the candidate's way if neither is better).
    p = sum(math.comb(discordant, k) for k in range(gained, discordant + 1)) / 2**discordant
    difference = (gained - lost) / n if n else 0.0
    spread = math.sqrt(max(discordant - (gained - lost) ** 2 / n, 0.0)) / n if n else 0.0
    return {
        "gained": gained,
        "lost": lost,
        "p_value": float(p),
        "difference": difference,
        "difference_ci": [difference - 1.96 * spread, difference + 1.96 * spread],
    }


def gate(before: Scores, after: Scores) -> tuple[bool, dict[str, object]]:
    """Promote only when held-out feedback from enough users improves significantly and the base
    set holds."""
    test = mcnemar(before.feedback_right, after.feedback_right)
    base_drop = _mean(before.base_right) - _mean(after.base_right)
    n_users = len(np.unique(after.feedback_users))
    if len(after.feedback_right) < MIN_HELDOUT:
        reason = f"only {len(after.feedback_right)} held-out feedback photos (needs {MIN_HELDOUT})"
    elif n_users < MIN_HELDOUT_USERS:
        reason = f"held-out feedback from too few users: {n_users} (needs {MIN_HELDOUT_USERS})"
    elif not (test["difference"] > 0 and test["p_value"] < SIGNIFICANCE):
        reason = f"held-out feedback not better (McNemar p = {test['p_value']:.3f})"
    elif base_drop > MAX_BASE_DROP + 1e-9:  # exactly one point is allowed
        reason = f"base held-out top-1 fell by {100 * base_drop:.1f} points"
    else:
        reason = ""
    return not reason, {**test, "base_drop": base_drop, "reason": reason or "promoted"}


def changed_species(
    before: Scores, after: Scores, labels: np.ndarray, names: list[str]
) -> list[dict[str, object]]:
    """The species whose top-1 changed most over both held-out sets (base and feedback);
    `labels` are the base held-out labels followed by the held-out feedback's."""
    right = [np.concatenate([s.base_right, s.feedback_right]) for s in (before, after)]
    rows = []
    for species in np.unique(labels):
        members = labels == species
        b, a = (float(r[members].mean()) for r in right)
        if a != b:
            rows.append(
                {"species": names[species], "before": b, "after": a, "photos": int(members.sum())}
            )
    rows.sort(key=lambda row: (-abs(row["after"] - row["before"]), row["species"]))
    return rows[:CHANGED_SPECIES]


@dataclass
class RetrainResult:
    candidate: ModelArtifact
    before: dict[str, object]
    after: dict[str, object]
    gate: dict[str, object]
    promote: bool
    seconds: float


def retrain(
    serving: ModelArtifact,
    base: BaseRows,
    rows: RetrainRows,
    version: str,
    seed: int = 0,
    class_names: list[str] | None = None,
) -> RetrainResult:
    """`class_names`: the serving model's, then any new species users taught (their rows are
    labelled with the indices after the known ones; model_training/growth.py)."""
    started = time.perf_counter()
    class_names = list(class_names or serving.class_names)
    first_new = len(serving.class_names)
    contradicted = contradicted_users(rows, seed)
    if contradicted:  # their photos weigh nothing (they stay in the database)
        n_base = len(rows.x) - rows.n_feedback_train
        left_out = np.concatenate([np.zeros(n_base, bool), np.isin(rows.users, contradicted)])
        rows = replace(rows, w=np.where(left_out, 0, rows.w).astype(np.float32))
    rows = replace(rows, w=with_new_species_floor(rows.y, rows.w, first_new, len(base.train_y)))
    head = fit_candidate(serving, rows, len(class_names), seed)
    predicted = _top1(head, rows.heldout_x)
    checks = check_new_species(predicted, rows.heldout_y, class_names, first_new)
    refused = [c.label for c in checks if not c.accepted]
    if refused:  # they stay candidates: fitted again with their rows weighing nothing
        rows = replace(rows, w=np.where(np.isin(rows.y, refused), 0, rows.w).astype(np.float32))
        head = fit_candidate(serving, rows, len(class_names), seed)
    keep = [label for label in range(len(class_names)) if label not in refused]
    learnt = [label for label in keep if label >= first_new]
    centroids, honesty = grown_scores(serving.centroids, serving.honesty, rows.x, rows.y, learnt)
    if refused:
        head = without_classes(head, keep)
        new_index = {old: new for new, old in enumerate(keep)}
        held = ~np.isin(rows.heldout_y, refused)
        heldout_y = np.array([new_index[int(y)] for y in rows.heldout_y[held]], np.int64)
        rows = replace(
            rows,
            heldout_x=rows.heldout_x[held],
            heldout_y=heldout_y,
            heldout_users=rows.heldout_users[held],
        )
        class_names = [class_names[label] for label in keep]
    before_scores, after_scores = score(serving.head, base, rows), score(head, base, rows)
    promote, verdict = gate(before_scores, after_scores)
    labels = np.concatenate([base.heldout_y, rows.heldout_y])
    verdict["changed_species"] = changed_species(before_scores, after_scores, labels, class_names)
    verdict["new_species"] = [check.as_dict() for check in checks]
    verdict["contradicted_users"] = len(contradicted)
    before = before_scores.summary()
    after = {**after_scores.summary(), "feedback_train": rows.n_feedback_train}
    seconds = round(time.perf_counter() - started, 1)
    # Thresholds, centroids, the honesty model and base rows are kept: the backbone and the
    # species are the same.
    metadata = replace(
        serving.metadata,
        version=version,
        classes=len(class_names),
        data_fingerprint=f"{serving.metadata.data_fingerprint}+feedback:{rows.n_feedback_train}",
        recipe={**serving.metadata.recipe, "retrained_from": serving.metadata.version},
        metrics={**after, "train_seconds": seconds},
        history={},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    candidate = replace(
        serving,
        head=head,
        class_names=class_names,
        metadata=metadata,
        centroids=centroids,
        base=base,
        honesty=honesty,
    )
    return RetrainResult(candidate, before, after, verdict, promote, seconds)


def _top1(head: keras.Model, rows: np.ndarray) -> np.ndarray:
    if not len(rows):  # Keras cannot predict on nothing
        return np.zeros(0, np.int64)
    return head.predict(rows.astype(np.float32), batch_size=4096, verbose=0).argmax(axis=1)
