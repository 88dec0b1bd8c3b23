"""Metrics and figures for a model on a labelled split: what `flowerbot evaluate` writes."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

CALIBRATION_BINS = 15


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins, and the bins themselves for the reliability diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for lo, hi in pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            table.append(
                {
                    "low": float(lo),
                    "high": float(hi),
                    "count": int(inside.sum()),
                    "accuracy": float(correct[inside].mean()),
                    "confidence": float(confidence[inside].mean()),
                }
            )
    return float(ece), table


def most_confused_pairs(
    matrix: np.ndarray, class_names: list[str], n: int = 10
) -> list[dict[str, object]]:
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(-off_diagonal, axis=None)[:n]
    pairs = []
    for flat in order:
        true, predicted = np.unravel_index(flat, matrix.shape)
        if off_diagonal[true, predicted] == 0:
            break
        pairs.append(
            {
                "true": class_names[true],
                "predicted": class_names[predicted],
                "count": int(off_diagonal[true, predicted]),
            }
        )
    return pairs


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]
) -> dict[str, object]:
    predicted = probabilities.argmax(axis=1)
    all_classes = list(range(len(class_names)))
    precision, recall, _, support = precision_recall_fscore_support(
        labels, predicted, labels=all_classes, zero_division=0
    )
    ece, bins = expected_calibration_error(probabilities, labels)
    matrix = confusion_matrix(labels, predicted, labels=all_classes)
    return {
        "photos": len(labels),
        "top1": float((predicted == labels).mean()),
        "top5": top_k_accuracy(probabilities, labels, 5),
        "macro_f1": float(
            f1_score(labels, predicted, labels=all_classes, average="macro", zero_division=0)
        ),
        "ece": ece,
        "calibration_bins": bins,
        "per_class": [
            {
                "species": name,
                "precision": float(p),
                "recall": float(r),
                "support": int(s),
            }
            for name, p, r, s in zip(class_names, precision, recall, support, strict=True)
        ],
        "most_confused": most_confused_pairs(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
    }


def write_report(
    metrics: dict, history: dict[str, list[float]] | None, out_dir: str | Path, title: str
) -> list[Path]:
    """metrics.json plus the confusion-matrix, reliability and training-curve figures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    written = [out / "metrics.json", _confusion_figure(metrics, out, title)]
    written.append(_reliability_figure(metrics, out, title))
    if history:
        written.append(_curves_figure(history, out, title))
    return written


def _confusion_figure(metrics: dict, out: Path, title: str) -> Path:
    matrix = np.asarray(metrics["confusion_matrix"], dtype=float)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(9, 8))
    shown = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, label="share of the true class")
    ax.set(
        title=f"Confusion matrix, {title} (rows sum to 1)",
        xlabel="predicted class index",
        ylabel="true class index",
    )
    return _save(fig, out / "confusion_matrix.png")


def _reliability_figure(metrics: dict, out: Path, title: str) -> Path:
    bins = metrics["calibration_bins"]
    fig, ax = plt.subplots(figsize=(6, 6))
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = 1.0 / CALIBRATION_BINS
    ax.bar(centres, [b["accuracy"] for b in bins], width=width * 0.9, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.plot(centres, [b["confidence"] for b in bins], "o", color="tab:red", label="mean confidence")
    ax.set(
        title=f"Reliability, {title} (ECE {metrics['ece']:.3f})",
        xlabel="top-1 confidence",
        ylabel="top-1 accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    return _save(fig, out / "reliability.png")


def _curves_figure(history: dict[str, list[float]], out: Path, title: str) -> Path:
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for key, values in history.items():
        epochs = range(1, len(values) + 1)
        (loss_ax if "loss" in key else acc_ax).plot(epochs, values, label=key)
    loss_ax.set(title=f"Loss, {title}", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title=f"Accuracy, {title}", xlabel="epoch", ylabel="accuracy")
    loss_ax.legend()
    acc_ax.legend()
    return _save(fig, out / "training_curves.png")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
