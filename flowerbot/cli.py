"""The `flowerbot` command: train, evaluate, identify, the web page, the Telegram bot and the
export of what its users taught.

It sits above every other package (bot, model_training, storage, web) and none of them
imports it (tests/test_layers.py). Each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.i18n import N_
from model_training.abstention import Verdict
from model_training.defaults import DATABASE_URL, DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.native_logs import filter_native_logs

if TYPE_CHECKING:
    from bot.i18n import Translator
    from model_training.classifier import FlowerClassifier, ShownAnswer

# What `flowerbot --help` says about itself.
DESCRIPTION = "`flowerbot`: train, evaluate and identify from the command line."
# What `pip install flowerbot[train]` adds: train, evaluate and the exports import them.
TRAINING_MODULES = ("tensorflow", "keras")
# `flowerbot bot`'s lines about the token.
MISSING = "not set (in the environment or a .env file; a token comes from @BotFather)"
REJECTED = "Telegram rejected the token (revoked or mistyped? @BotFather shows the current one)"


def main(argv: list[str] | None = None) -> int:
    filter_native_logs()  # first: building the parser may import TensorFlow
    return dispatch(parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    from model_training.artifact import BackboneUnavailable, ModelFolderError
    from model_training.lite import NEEDS_TRAIN

    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    try:
        return args.command(args)
    except (ModelFolderError, BackboneUnavailable) as err:  # one line, never a traceback
        print(f"flowerbot: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:  # a plain install serves; training needs the extra
        if err.name not in TRAINING_MODULES:
            raise
        print(f"flowerbot: {args.command_name} {NEEDS_TRAIN}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    """Every command, each with its options and the function that runs it."""
    main_parser = argparse.ArgumentParser(prog="flowerbot", description=DESCRIPTION)
    commands = main_parser.add_subparsers(title="commands")

    train = commands.add_parser("train", help="fit the head on a data set and save a model folder")
    train.add_argument(
        "--data", type=Path, required=True, help="folder with train/ val/ (and test/)"
    )
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument(
        "--recipe",
        help="product (the shipped model: every photo but the base held-out set; the choice for "
        "a set with test/, as Oxford's), default (the official split's benchmark recipe; the "
        "choice without test/, as export-feedback's) or writeup",
    )
    train.add_argument(
        "--scaling",
        choices=["mobilenet_v2", "unit"],
        help="pixel scaling: mobilenet_v2 ([-1, 1], the default) or unit (the write-up's x/255)",
    )
    train.add_argument(
        "--classes", help="classes file or known set (kaggle104); default: beside the data"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--version", help="model version name (default: the folder name)")
    train.add_argument(
        "--no-test", action="store_true", help="skip scoring the test split (as without test/)"
    )
    train.add_argument("--report", type=Path, help="also write the evaluation report here")
    train.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    train.set_defaults(command=_train, command_name="train")

    evaluate = commands.add_parser(
        "evaluate", help="metrics.json and figures for a model on a split"
    )
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    evaluate.add_argument(
        "--split",
        default="heldout",
        help="heldout (the base held-out set, which no product model trains on), train, val, test",
    )
    evaluate.add_argument("--out", type=Path, default=Path("runs/report"))
    evaluate.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    evaluate.set_defaults(command=_evaluate, command_name="evaluate")

    identify = commands.add_parser("identify", help="top-5 species for each photo")
    identify.add_argument("photos", nargs="+", type=Path)
    identify.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    identify.add_argument("--json", action="store_true", help="one JSON object per photo")
    identify.add_argument(
        "--together",
        action="store_true",
        help="the photos show one plant: one answer for all of them (as for a Telegram album)",
    )
    identify.add_argument(
        "--lang", default="en", help="language of the text answer and the names: en or es"
    )
    identify.set_defaults(command=_identify, command_name="identify")

    from web.export import DEFAULT_OUT, QUANTIZE_FLAGS

    export_web = commands.add_parser("export-web", help="convert a model for the web page (TF.js)")
    export_web.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    export_web.add_argument("--out", type=Path, default=DEFAULT_OUT)
    export_web.add_argument("--quantize", choices=list(QUANTIZE_FLAGS), default="none")
    export_web.set_defaults(command=_export_web, command_name="export-web")

    export_tflite = commands.add_parser(
        "export-tflite", help="the whole model as one LiteRT file (e.g. for a phone app)"
    )
    export_tflite.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    export_tflite.add_argument("--out", type=Path, required=True, help="the .tflite file to write")
    export_tflite.set_defaults(command=_export_tflite, command_name="export-tflite")

    web = commands.add_parser("web", help="serve the web page on 127.0.0.1")
    web.add_argument("--port", type=int, default=8000)
    web.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    web.add_argument(
        "--bot",
        metavar="URL",
        help="forward POST /webapp/ to the bot's health server (e.g. http://127.0.0.1:8080)",
    )
    web.set_defaults(command=_web, command_name="web")

    bot = commands.add_parser("bot", help="run the Telegram bot (configuration: env or .env)")
    bot.set_defaults(command=_bot, command_name="bot")

    export = commands.add_parser(
        "export-feedback", help="the photos users labelled, as a data set `train` reads"
    )
    export.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    export.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DATABASE_URL),
        help="the bot's database (default: DATABASE_URL from the environment, else %(default)s)",
    )
    export.set_defaults(command=_export_feedback, command_name="export-feedback")
    return main_parser


def _train(args: argparse.Namespace) -> int:
    from model_training.data import read_class_names
    from model_training.evaluate import write_report
    from model_training.train import RECIPES, RowRecipe, recipe_named
    from model_training.workflow import evaluate_on_split, train_on_dataset, train_product

    has_test = (args.data / "test").is_dir()
    recipe_name = args.recipe or ("product" if has_test else "default")
    if recipe_name not in [*RECIPES, "product"]:
        print(
            f"flowerbot: unknown recipe {recipe_name!r} (choose product, {', '.join(RECIPES)})",
            file=sys.stderr,
        )
        return 2
    if recipe_name == "product" and not has_test:
        print(f"flowerbot: the product recipe needs {args.data / 'test'}", file=sys.stderr)
        return 2
    classes = read_class_names(args.classes) if args.classes else None
    version = args.version or args.out.name
    if recipe_name == "product":  # scored on the base held-out set; test trains
        scaling = {"scaling": args.scaling} if args.scaling else {}
        artifact = train_product(
            args.data, RowRecipe(**scaling), args.cache_dir, version, classes, args.seed
        )
        artifact.save(args.out)
        print(json.dumps({"model": str(args.out), **artifact.metadata.metrics}, indent=2))
        return 0
    recipe = recipe_named(recipe_name, args.scaling)
    try:
        artifact = train_on_dataset(args.data, recipe, args.cache_dir, version, classes, args.seed)
    except FileNotFoundError as err:  # no train/ or val/
        print(f"flowerbot: {err}", file=sys.stderr)
        return 1
    if has_test and not args.no_test:
        report = evaluate_on_split(artifact, args.data, "test", args.cache_dir)
        artifact.metadata.metrics.update(
            {k: report[k] for k in ("photos", "top1", "top5", "macro_f1", "ece")}
        )
        if args.report:
            write_report(report, artifact.metadata.history, args.report, f"{args.out.name} on test")
    artifact.save(args.out)
    print(json.dumps({"model": str(args.out), **artifact.metadata.metrics}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from model_training.artifact import load_artifact
    from model_training.evaluate import write_report
    from model_training.workflow import evaluate_on_split

    artifact = load_artifact(args.model)
    report = evaluate_on_split(artifact, args.data, args.split, args.cache_dir)
    title = f"{artifact.metadata.version} on {args.split}"
    for path in write_report(report, artifact.metadata.history, args.out, title):
        print(path)
    summary = {k: report[k] for k in ("split", "photos", "top1", "top5", "macro_f1", "ece")}
    print(json.dumps(summary))
    return 0


def _identify(args: argparse.Namespace) -> int:
    from bot.i18n import LANGUAGES, translator
    from model_training.classifier import FlowerClassifier
    from model_training.photos import PhotoError, read_photo

    if args.lang not in LANGUAGES:
        print(f"flowerbot: --lang: choose one of {', '.join(LANGUAGES)}", file=sys.stderr)
        return 2
    t = translator(args.lang)
    classifier = FlowerClassifier.from_folder(args.model)
    if args.together:
        return _identify_together(args.photos, classifier, t, args.json)
    failures = 0
    for path in args.photos:
        try:
            answer = classifier.answers([read_photo(path)])[0]
        except PhotoError as err:
            print(f"{path}: {err}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            print(json.dumps({"file": str(path), **answer.as_json()}))
        else:
            _print_answer(str(path), answer, t)
    return 1 if failures else 0


def _identify_together(
    paths: list[Path], classifier: FlowerClassifier, t: Translator, as_json: bool
) -> int:
    """Photos of one plant, one answer by the album rule (model_training/albums.py), as the bot
    answers an album. A file that cannot be read is named and no answer is printed: it would not
    be an answer for the photos asked about."""
    from bot.replies import LEFT_OUT, LEFT_OUT_LINE, NOT_A_FLOWER_PHOTO
    from model_training.albums import album_answer
    from model_training.photos import PhotoError, read_photo

    photos = []
    for path in paths:
        try:
            photos.append(read_photo(path))
        except PhotoError as err:
            print(f"{path}: {err}", file=sys.stderr)
    if len(photos) < len(paths):
        return 1
    album = album_answer(classifier, classifier.answers(photos))
    if as_json:
        left_out = [
            {"file": str(paths[i]), "reason": NOT_A_FLOWER_PHOTO} for i in album.not_flowers
        ]
        print(
            json.dumps({"files": [str(p) for p in paths], **album.as_json(), "left_out": left_out})
        )
        return 0
    _print_answer(" + ".join(str(p) for p in paths), album, t)
    reason = t(LEFT_OUT[NOT_A_FLOWER_PHOTO])
    for i in album.not_flowers:
        print(f"  {t(LEFT_OUT_LINE).format(position=paths[i], reason=reason)}")
    return 0


def _print_answer(label: str, answer: ShownAnswer, t: Translator) -> None:
    """The verdict line, an unsure answer's genus or family in the bot's words, the top-5."""
    from bot.replies import group_line
    from model_training.species_names import translated

    best = translated(answer.top5[0].species, t.language)
    print(f"{label}: {t(VERDICT_LINES[answer.verdict]).format(species=best)}")
    if (group := answer.group) is not None:  # worded as the bot words it
        print(f"  {group_line(group, t, html=False)}")
    for rank, score in enumerate(answer.top5, 1):
        name = translated(score.species, t.language)
        print(f"  {rank}. {name:<28} {t.percent(score.confidence, 1):>7}")


# The line above each photo's top-5, one per verdict (model_training/abstention.py).
VERDICT_LINES = {
    Verdict.SURE: "{species}",
    Verdict.NOT_SURE: N_("not sure; best guesses"),
    Verdict.UNKNOWN_SPECIES: N_("not sure, maybe a species I do not know yet; best guesses"),
    Verdict.NOT_A_FLOWER: N_("does not look like a flower; best guesses"),
    Verdict.TOO_SMALL: N_("photo too small to be sure (send a larger one); best guesses"),
}


def _export_web(args: argparse.Namespace) -> int:
    from web.export import ExportError, export_web, model_bytes

    try:
        out = export_web(args.model, args.out, args.quantize)
    except ExportError as err:
        print(f"flowerbot: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"out": str(out), "quantize": args.quantize, "bytes": model_bytes(out)}))
    return 0


def _export_tflite(args: argparse.Namespace) -> int:
    from model_training.artifact import load_artifact
    from model_training.convert import whole_model_tflite

    model = whole_model_tflite(load_artifact(args.model))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(f".{args.out.name}.partial")
    partial.write_bytes(model)
    partial.replace(args.out)  # a phone app's build never picks up half a file
    print(json.dumps({"out": str(args.out), "bytes": len(model)}))
    return 0


def _web(args: argparse.Namespace) -> int:
    from web.export import DEFAULT_OUT, ExportError, export_web, needs_export
    from web.server import make_server, missing_vendor_files

    if missing := missing_vendor_files():
        print(f"flowerbot: {missing[0]} is missing: run `make web-setup`", file=sys.stderr)
        return 1
    try:
        if needs_export(args.model, DEFAULT_OUT):
            print(f"exporting {args.model} to {DEFAULT_OUT} ...", flush=True)
            export_web(args.model, DEFAULT_OUT)
    except ExportError as err:
        print(f"flowerbot: {err}", file=sys.stderr)
        return 1
    server = make_server(DEFAULT_OUT, args.port, webapp_backend=args.bot)
    with server, contextlib.suppress(KeyboardInterrupt):
        print(f"serving http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)", flush=True)
        server.serve_forever()
    return 0


def _bot(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bot.config import Settings

    try:
        settings = Settings()
    except ValidationError as err:  # one clear line per problem, no traceback
        for problem in err.errors():
            name = str(problem["loc"][0]).upper() if problem["loc"] else "configuration"
            message = MISSING if problem["type"] == "missing" else problem["msg"]
            print(f"flowerbot bot: {name}: {message}", file=sys.stderr)
        return 2
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level="INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the token
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # 7 lines per import

    from telegram.error import InvalidToken

    # PTB logs a rejected token with a traceback whose message holds the token: said below.
    logging.getLogger("telegram.ext").addFilter(
        lambda record: not (record.exc_info and isinstance(record.exc_info[1], InvalidToken))
    )
    from bot.app import StartError, run
    from bot.i18n import MissingCatalogue
    from model_training.artifact import BackboneUnavailable, ModelFolderError

    try:
        run(settings)
    except (StartError, MissingCatalogue, ModelFolderError, BackboneUnavailable) as err:
        # Raised before the bot answers anyone (handlers' errors never get here): one line.
        print(f"flowerbot bot: {err}", file=sys.stderr)
        return 2
    except InvalidToken:  # at start (getMe); PTB's own message would print the token
        print(f"flowerbot bot: TELEGRAM_BOT_TOKEN: {REJECTED}", file=sys.stderr)
        return 2
    return 0


# export-feedback's labels.csv: one row per photo and species users named for it.
EXPORT_COLUMNS = ["file", "species", "split", "labellers", "model_version", "photo_id"]


def _export_feedback(args: argparse.Namespace) -> int:
    """DIR/{train,val}/<species>/<photo id>.jpg, DIR/classes.txt and DIR/labels.csv; val holds
    the photos the bot's retraining gate holds out (model_training.heldout.held_out)."""
    from bot.app import StartError, open_database
    from model_training.atomic import atomic_folder
    from model_training.heldout import held_out
    from storage import iter_labelled_jpegs

    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"flowerbot: {args.out} exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        database = open_database(args.database_url, create=False)
    except StartError as err:
        print(f"flowerbot: {err}", file=sys.stderr)
        return 2
    rows = []
    try:
        with atomic_folder(args.out) as staging, database.session() as session:
            for label in iter_labelled_jpegs(session):
                split = "val" if held_out(label.photo_id) else "train"
                file = Path(split, label.species, f"{label.photo_id}.jpg")
                (staging / file).parent.mkdir(parents=True, exist_ok=True)
                (staging / file).write_bytes(label.jpeg)
                values = (file.as_posix(), label.species, split, label.labellers)
                rows.append([*values, label.model_version, label.photo_id])
            species = sorted({row[1] for row in rows})
            (staging / "classes.txt").write_text("".join(f"{name}\n" for name in species), "utf-8")
            with (staging / "labels.csv").open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([EXPORT_COLUMNS, *rows])
    finally:
        database.dispose()
    splits = {split: sum(row[2] == split for row in rows) for split in ("train", "val")}
    summary = {"out": str(args.out), "photos": len(rows), "species": len(species), **splits}
    print(json.dumps(summary))
    return 0
