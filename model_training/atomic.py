"""Write a folder atomically: readers see the old folder or the complete new one, never half of one.

A model folder (a training artifact, a TF.js export) is several files that only make sense
together; the bot, the web server or a second command may read it while it is rewritten.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success it replaces `target`.

    The staging folder is in the same directory so that the final step is a rename on one file
    system. If the block raises, the staging folder is removed, `target` is left as it was and
    the exception propagates. replace=False: a `target` that exists by then (another process
    wrote the same folder meanwhile, e.g. a model version into a shared cache) is kept and the
    staging folder dropped, so a reader of `target` never meets the moment it is swapped.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if replace:
            _replace(staging, target)
        else:
            _place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _place(staging: Path, target: Path) -> None:
    """Rename `staging` to `target` unless `target` exists, in one step (rename refuses a
    non-empty directory)."""
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _replace(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`, moving an old `target` aside first and deleting it after.

    A directory cannot be renamed over a non-empty one, so there is a moment between the two
    renames with no `target`; the old folder is only deleted once the new one is in place.
    """
    if not target.exists():
        staging.rename(target)
        return
    old = staging.with_name(f"{staging.name}.old")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
