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
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success it replaces `target`.

    The staging folder is in the same directory so that the final step is a rename on one file
    system. If the block raises, the staging folder is removed, `target` is left as it was and
    the exception propagates.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
