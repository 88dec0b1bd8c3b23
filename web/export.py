"""Model artifact -> TensorFlow.js graph model for the web page, with its class names and metadata.

<out>/model.json, group1-shard*.bin   the composed model (backbone, head, serving views) as one
                                     graph: image float32 RGB in 0..255, (N, 224, 224, 3), and
                                     view int32 (V,) -> probabilities and pooled backbone
                                     features (1280), both averaged over those views
<out>/honesty.bin                    what the "not a flower" and "unknown species" scores need
                                     (model_training/honesty.py; the species centroids for older
                                     folders), listed in model.json's weights manifest as a
                                     group of its own: TF.js loads it with the graph's weights and
                                     the service worker precaches it with the shards
<out>/classes.json                   class names, index N = class N
<out>/metadata.json                  the artifact's metadata and how it was exported, the
                                     species' names in other languages (`names`), and their
                                     taxonomy and Wikipedia links (`taxonomy`)

The converter (the `tensorflowjs` pip package) lives in its own virtual environment, `.venv-web`
(`make web-setup`): it pins packages the project does not want in its own environment (see
docs/web.md). This module only writes a SavedModel and runs the converter's command.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model_training.abstention import VerdictRules
from model_training.atomic import atomic_folder
from model_training.species_names import LANGUAGE_COLUMNS, translated

if TYPE_CHECKING:  # the CLI imports this module for its options; Keras loads only to export
    from model_training.artifact import ModelArtifact

WEB_ROOT = Path(__file__).resolve().parent
ROOT = WEB_ROOT.parent  # the repository, where `make web-setup` puts .venv-web
DEFAULT_OUT = WEB_ROOT / "model"
MODEL_FILE = "model.json"
CLASSES_FILE = "classes.json"
METADATA_FILE = "metadata.json"
HONESTY_BIN = "honesty.bin"
# The names of the honesty arrays among the model's weights (model.json), clear of graph nodes.
HONESTY_PREFIX = "flowerbot_honesty/"
CONVERTER = "tensorflowjs_converter"
CONVERTER_ENV = "FLOWERBOT_TFJS_CONVERTER"
# Weight quantization of the converter: stored weights shrink 2x (float16) or 4x (uint8) and are
# expanded back to float32 when the page loads them; activations stay float32 either way.
QUANTIZE_FLAGS: dict[str, list[str]] = {
    "none": [],
    "float16": ["--quantize_float16=*"],
    "uint8": ["--quantize_uint8=*"],
}


class ExportError(RuntimeError):
    """The export could not run; the message says what to install or fix."""


def find_converter() -> str:
    """The converter command: $FLOWERBOT_TFJS_CONVERTER, then .venv-web's, then one on PATH."""
    candidates = [
        os.environ.get(CONVERTER_ENV),
        str(ROOT / ".venv-web" / "bin" / CONVERTER),
        shutil.which(CONVERTER),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise ExportError(
        f"{CONVERTER} not found: run `make web-setup` (it creates .venv-web) "
        f"or point ${CONVERTER_ENV} at one"
    )


def needs_export(model_dir: str | Path, out: str | Path = DEFAULT_OUT) -> bool:
    """True when `out` holds no exported model or one older than any file of the artifact."""
    exported = Path(out) / MODEL_FILE
    if not exported.is_file():
        return True
    newest_source = max(p.stat().st_mtime for p in Path(model_dir).iterdir() if p.is_file())
    return newest_source > exported.stat().st_mtime


def export_web(
    model_dir: str | Path, out: str | Path = DEFAULT_OUT, quantize: str = "none"
) -> Path:
    """Export the artifact in `model_dir` to `out`; the folder appears complete or not at all."""
    if quantize not in QUANTIZE_FLAGS:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_FLAGS)}, not {quantize!r}")
    from model_training.artifact import load_artifact

    converter = find_converter()
    artifact = load_artifact(model_dir)
    out = Path(out)
    with atomic_folder(out) as staging:
        with tempfile.TemporaryDirectory(prefix="flowerbot-savedmodel-") as saved_model:
            save_serving_model(artifact, saved_model)
            convert(converter, Path(saved_model), staging, quantize)
        scores = write_honesty(artifact, staging, quantize)
        write_labels(artifact, staging, quantize, scores)
    return out


def save_serving_model(artifact: ModelArtifact, folder: str | Path) -> None:
    """The artifact's model as a SavedModel: (image, view) -> probabilities and pooled backbone
    features, each averaged over `view` (outputs "probabilities" and "features").

    `image` is float32 RGB in 0..255, (N, 224, 224, 3): TF.js has no uint8 tensors (browser
    pixels arrive as int32), and the Keras model casts its input to float32 first anyway.
    `view` is int32 (V,): positions in `metadata.serve_views`. With every position (0..V-1) the
    graph computes what `artifact.composed()` does (the same crops and flips, backbone, head,
    probabilities averaged over the views); the page's live camera asks for one view per frame
    and averages over frames instead (docs/web.md).
    """
    import keras
    import tensorflow as tf

    from model_training.model import SCALINGS, imagenet_backbone
    from model_training.views import VIEWS

    size = artifact.metadata.input_size
    views = [VIEWS[name] for name in artifact.metadata.serve_views]
    # Normalised [y1, x1, y2, x2] crop boxes, as model_training.views.ViewStack builds them, but
    # a mirrored view swaps x1 and x2: crop_and_resize then samples the same points right to
    # left, which is the crop mirrored. ViewStack's reverse-and-select instead costs TF.js more
    # than a backbone pass at batch size 1 (its select broadcasts by tiling the whole image).
    boxes = []
    for v in views:
        y1, x1 = (1 - v.fraction) * v.top, (1 - v.fraction) * v.left
        y2, x2 = y1 + v.fraction, x1 + v.fraction
        boxes.append([y1, x2, y2, x1] if v.flip else [y1, x1, y2, x2])
    boxes = tf.constant(boxes, tf.float32)
    scale, offset = SCALINGS[artifact.metadata.scaling]
    backbone, head = imagenet_backbone(), artifact.head

    def serve(image: tf.Tensor, view: tf.Tensor) -> tf.Tensor:
        batch, n_views = tf.shape(image)[0], tf.shape(view)[0]
        crops = tf.image.crop_and_resize(
            image,
            tf.tile(tf.gather(boxes, view), [batch, 1]),
            tf.repeat(tf.range(batch), n_views),
            (size, size),
        )
        x = crops * scale + offset
        features = tf.reduce_mean(backbone(x, training=False), axis=[1, 2])
        probabilities = head(features, training=False)
        # The features too, for the feature-space scores the page computes (write_honesty).
        return {
            "probabilities": tf.reduce_mean(
                tf.reshape(probabilities, (batch, n_views, -1)), axis=1
            ),
            "features": tf.reduce_mean(tf.reshape(features, (batch, n_views, -1)), axis=1),
        }

    archive = keras.export.ExportArchive()
    archive.track(backbone)
    archive.track(head)
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec((None, size, size, 3), tf.float32, name="image"),
            tf.TensorSpec((None,), tf.int32, name="view"),
        ],
    )
    archive.write_out(str(folder), verbose=False)


def convert(converter: str, saved_model: Path, out: Path, quantize: str) -> None:
    command = [
        converter,
        "--input_format=tf_saved_model",
        "--output_format=tfjs_graph_model",
        "--signature_name=serving_default",
        "--saved_model_tags=serve",
        *QUANTIZE_FLAGS[quantize],
        str(saved_model),
        str(out),
    ]
    # The converter imports TensorFlow, JAX and decision forests and prints pages of start-up
    # chatter; it is shown only when the conversion fails.
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    if result.returncode != 0 or not (out / MODEL_FILE).is_file():
        raise ExportError(f"{CONVERTER} failed ({result.returncode}):\n{result.stderr[-4000:]}")


def write_honesty(artifact: ModelArtifact, out: Path, quantize: str) -> dict[str, object]:
    """The arrays behind the feature-space scores -> <out>/honesty.bin, as a weight group of
    model.json; returns how the page computes the scores from them (metadata "honesty").

    With honesty.npz (model_training/honesty.py): the flower log-odds (weights on the raw mean
    features, bias) and the species space (whitening, whitened species means, the all-flowers
    Gaussian's whitening and mean; whether it reads root-normalised rows, and the weight of the
    log top-1 confidence in the species score). Without it, as FlowerClassifier.honesty_scores:
    the flower score is the cosine to the nearest species centroid and there is no species score.
    float32 unless the export quantizes the weights: then float16 (2.7 MB -> 1.4 MB), which
    TF.js expands back to float32 when it loads them.
    """
    honesty = artifact.honesty
    if honesty is None:
        arrays = {"centroids": artifact.centroids}
        scores = {"flower_score": "cosine_to_centroids", "species_score": None}
    else:
        arrays = {
            "flower_weights": honesty.flower_weights,
            "flower_bias": np.reshape(honesty.flower_bias, (1,)),
            "whitening": honesty.whitening,
            "species_means": honesty.species_means,
            "background_whitening": honesty.background_whitening,
            "background_mean": honesty.background_mean,
        }
        scores = {
            "flower_score": "logistic",
            "species_score": "relative_mahalanobis",
            # How the page reads the species space (model_training/honesty.py's SpeciesSpace).
            "root_normalised": bool(honesty.root_normalised),
            "confidence_weight": float(honesty.confidence_weight),
        }
    stored = np.float32 if quantize == "none" else np.float16
    specs, chunks = [], []
    for name, array in arrays.items():
        array = np.asarray(array, dtype=np.float32)
        spec = {"name": HONESTY_PREFIX + name, "shape": list(array.shape), "dtype": "float32"}
        if stored is np.float16:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        specs.append(spec)
        chunks.append(array.astype(stored).tobytes())
    (out / HONESTY_BIN).write_bytes(b"".join(chunks))
    manifest = json.loads((out / MODEL_FILE).read_text())
    manifest["weightsManifest"].append({"paths": [HONESTY_BIN], "weights": specs})
    (out / MODEL_FILE).write_text(json.dumps(manifest))
    return {"weights_prefix": HONESTY_PREFIX, **scores}


def write_labels(
    artifact: ModelArtifact, out: Path, quantize: str, honesty: dict[str, object] | None = None
) -> None:
    (out / CLASSES_FILE).write_text(json.dumps(artifact.class_names, ensure_ascii=False) + "\n")
    rules = VerdictRules.from_thresholds(artifact.metadata.thresholds)
    metadata = {
        **asdict(artifact.metadata),
        # Species names in other languages, index N = class N (model_training/species_names.py);
        # the page shows those of the browser's language.
        "names": {
            language: [translated(name, language) for name in artifact.class_names]
            for language in LANGUAGE_COLUMNS
        },
        # An unsure answer's group and each species' Wikipedia link (page_taxonomy).
        "taxonomy": page_taxonomy(artifact.class_names),
        # The verdict's rules in the order they apply (model_training/abstention.py). A rule a
        # model folder lacks (cut -inf: never applies) is left out: JSON has no -Infinity.
        "verdict_rules": [
            {"verdict": verdict.value, "score": score, "below": below}
            for verdict, score, below in rules.in_order()
            if math.isfinite(below)
        ],
        # How the page computes the rules' feature-space scores from the features the graph
        # returns and the arrays of honesty.bin (write_honesty).
        "honesty": honesty,
        "export": {
            "format": "tfjs_graph_model",
            "quantize": quantize,
            "input": "float32 RGB 0..255, (N, size, size, 3), centre square of the photo",
            "view": "int32 (V,): positions in serve_views; outputs averaged over them",
            "outputs": "probabilities (N, classes), features (N, 1280): pooled backbone",
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def page_taxonomy(class_names: list[str]) -> dict[str, object]:
    """What the page needs to name an unsure answer's genus or family and to link each species
    (model_training/taxonomy.py), its numbers and words read from where the bot reads them:

    group_rule  taxonomy.group_of's parameters (app.js's groupOf mirrors the function)
    classes     each class's scientific name, genus and family, index N = class N; null for a
                class the taxonomy file lacks (one taught by users)
    languages   per language the bot speaks: the group sentences of its catalogue
                (bot/replies.py's GROUP_LINES and OR, with their {placeholders}), each family's
                name as the sentence says it (taxonomy.family_name: the Spanish name in Spanish)
                and each class's Wikipedia address (taxonomy.species_url: the search-and-go URL
                of its scientific name; null where the file lacks the class)
    """
    from bot.i18n import LANGUAGES, translator
    from bot.replies import GROUP_LINES, OR
    from model_training.taxonomy import (
        GROUP_ABOVE,
        LEVELS,
        MIN_SPECIES,
        NAMED_ABOVE,
        UNSURE,
        family_name,
        species_url,
        taxon,
    )

    taxa = [taxon(name) for name in class_names]
    families = sorted({found.family for found in taxa if found is not None})
    languages = {}
    for language in LANGUAGES:
        t = translator(language)
        languages[language] = {
            **{level.value: t(GROUP_LINES[level]) for level in LEVELS},
            "or": t(OR),
            "families": {family: family_name(family, language) for family in families},
            "wikipedia": [species_url(name, language) for name in class_names],
        }
    return {
        "group_rule": {
            "unsure": sorted(verdict.value for verdict in UNSURE),
            "levels": [level.value for level in LEVELS],
            "above": GROUP_ABOVE,
            "min_species": MIN_SPECIES,
            "named_above": NAMED_ABOVE,
        },
        "classes": [
            None
            if found is None
            else {
                "scientific_name": found.scientific_name,
                "genus": found.genus,
                "family": found.family,
            }
            for found in taxa
        ],
        "languages": languages,
    }


def model_bytes(out: str | Path) -> int:
    """What the page downloads for the model: model.json and its weight shards (honesty.bin
    included)."""
    manifest = json.loads((Path(out) / MODEL_FILE).read_text())
    shards = [name for group in manifest["weightsManifest"] for name in group["paths"]]
    return sum((Path(out) / name).stat().st_size for name in [MODEL_FILE, *shards])
