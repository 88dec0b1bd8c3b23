"""Photos -> answers: the one inference path of the bot, the CLI, the benchmarks and the web export.

An `Answer` carries everything a front end shows or keeps: the top-5 species with their
confidences, the verdict (model_training/abstention.py, with the rules from the model folder),
the per-view backbone features (stored so retraining never runs the backbone again) and the
version of the model that made it.

It runs through LiteRT and numpy (model_training/lite.py): serving imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model_training.abstention import ONE_VIEW, Verdict, VerdictRules, flower_scores
from model_training.artifact import ModelArtifact, load_artifact
from model_training.lite import ServingModel
from model_training.photos import Photo, decode_photo
from model_training.taxonomy import Group, group_of

TOP_K = 5


@dataclass(frozen=True)
class SpeciesScore:
    species: str
    index: int
    confidence: float


@dataclass(frozen=True)
class ShownAnswer:
    """What is shown of an answer, for one photo (Answer) or several of one plant (albums.py)."""

    top5: list[SpeciesScore]
    verdict: Verdict
    model_version: str

    @property
    def group(self) -> Group | None:
        """The genus or family it is probably in when the species is unsure (taxonomy.py)."""
        return group_of(self.top5, self.verdict)

    def as_json(self) -> dict[str, object]:
        """What a front end shows: the verdict, the top-5 and the group, if any (no pixels, no
        features)."""
        group = self.group
        return {
            "verdict": self.verdict.value,
            "model_version": self.model_version,
            "top5": [asdict(score) for score in self.top5],
            "group": None if group is None else group.as_json(),
        }


@dataclass(frozen=True)
class Answer(ShownAnswer):
    features: np.ndarray  # (n_views, 1280) backbone features of the serving views
    image: np.ndarray  # the 224x224 square the model saw
    photo_size: tuple[int, int]  # width, height as sent
    flower_score: float  # flower log-odds (model_training/honesty.py)
    species_score: float = float("inf")  # higher: nearer a known species (honesty.py)
    # Every species' probability (n_classes,): what an album's answer combines.
    probabilities: np.ndarray | None = None


class FlowerClassifier:
    def __init__(self, model: ServingModel | ModelArtifact) -> None:
        self._artifact = model if isinstance(model, ModelArtifact) else None
        if isinstance(model, ModelArtifact):  # training side: one in memory
            model = ServingModel.of(model)
        self.model = model
        self.class_names = model.class_names
        self.version = model.metadata.version
        self.rules = VerdictRules.from_thresholds(model.metadata.thresholds)
        # The one-view answer (model_training/one_view.py), when the folder has its cuts.
        self.one_view_rules = VerdictRules.one_view(model.metadata.thresholds)

    @classmethod
    def from_folder(cls, folder: str | Path) -> FlowerClassifier:
        return cls(ServingModel.load(folder))

    @property
    def artifact(self) -> ModelArtifact:
        """The model with its head in Keras, for training-side code (benchmarks, tests); loaded
        on first use, as serving never needs it."""
        if self._artifact is None:
            assert self.model.folder is not None  # only a classifier of an artifact lacks one
            self._artifact = load_artifact(self.model.folder)
        return self._artifact

    @property
    def confidence_weight(self) -> float:
        """How much the log of the top-1 confidence counts in a species score (honesty.py); 0
        for a folder without an honesty model (its species scores are infinite anyway)."""
        honesty = self.model.honesty
        return 0.0 if honesty is None else float(honesty.confidence_weight)

    def classify(
        self, images: np.ndarray, views: tuple[str, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(batch, 224, 224, 3) uint8 -> probabilities (batch, n_classes) and backbone features
        (batch, n_views, 1280) for the serving views (or `views`)."""
        return self.model.classify(images, views)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(batch, 224, 224, 3) uint8 -> (batch, n_classes) probabilities."""
        if len(images) == 0:
            return np.empty((0, len(self.class_names)), dtype=np.float32)
        return self.classify(images)[0]

    @property
    def has_one_view(self) -> bool:
        return self.one_view_rules is not None

    def answers(self, photos: Sequence[Photo], one_view: bool = False) -> list[Answer]:
        """Decoded photos -> one answer each, from one batched pass through the model; with
        `one_view`, from the "full" view alone under its own cuts (a folder without them
        raises ValueError)."""
        if not photos:
            return []
        rules = self.rules
        if one_view:
            if self.one_view_rules is None:
                raise ValueError(f"model {self.version} has no one-view cuts")
            rules = self.one_view_rules
        views = (ONE_VIEW,) if one_view else None
        probabilities, features = self.classify(np.stack([p.image for p in photos]), views)
        flower, species = self.honesty_scores(features, probabilities.max(axis=1))
        return [
            Answer(
                top5=self.top_k_of(probs),
                verdict=rules.verdict(
                    float(probs.max()), float(score), photo.short_side, float(known)
                ),
                model_version=self.version,
                features=views,
                image=photo.image,
                photo_size=(photo.width, photo.height),
                flower_score=float(score),
                species_score=float(known),
                probabilities=probs,
            )
            for photo, probs, views, score, known in zip(
                photos, probabilities, features, flower, species, strict=True
            )
        ]

    def honesty_scores(
        self, features: np.ndarray, confidences: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(photos, views, dim) and the top-1 confidences -> flower scores and species scores,
        as the rules expect them."""
        honesty = self.model.honesty
        if honesty is None:  # a folder from before honesty.npz: cosine, no unknown-species rule
            scores = flower_scores(features, self.model.centroids)
            return scores, np.full(len(scores), np.inf)
        return honesty.flower_scores(features), honesty.species_scores(features, confidences)

    def identify(self, data: bytes) -> Answer:
        """Encoded photo bytes -> its answer (PhotoError for unreadable input)."""
        return self.answers([decode_photo(data)])[0]

    def top_k_of(self, probabilities: np.ndarray, k: int = TOP_K) -> list[SpeciesScore]:
        best = np.argsort(-probabilities, kind="stable")[:k]
        return [SpeciesScore(self.class_names[i], int(i), float(probabilities[i])) for i in best]
