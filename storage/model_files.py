"""Model folders in the database: each registry version's files, every content stored once (by
its sha256), so that bot processes on several machines share nothing but the database. A process
copies a version's files into its own cache folder before it loads them (bot/serving.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from storage.models import ModelFile, ModelVersion, ModelVersionFile
from storage.repository import upsert_insert


def store_model_files(session: Session, version: ModelVersion, folder: str | Path) -> int:
    """Record the folder's files as the version's, in the caller's transaction. Content already
    stored (a file another version shares) is not sent again. Returns the bytes newly stored."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{folder} holds no files to store")
    added = 0
    for path in files:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if not session.scalar(select(exists().where(ModelFile.sha256 == digest))):
            blob = upsert_insert(session, ModelFile).values(
                sha256=digest, size=len(data), data=data
            )
            # Another process storing the same content at once: the first one's row stands.
            session.execute(blob.on_conflict_do_nothing(index_elements=[ModelFile.sha256]))
            added += len(data)
        link = upsert_insert(session, ModelVersionFile).values(
            version_id=version.id, name=path.relative_to(folder).as_posix(), sha256=digest
        )
        session.execute(link.on_conflict_do_nothing())
    return added


def has_model_files(session: Session, version: ModelVersion) -> bool:
    """False for versions recorded without their files (before revision 0008, or MODEL_DIR's
    first registration): those are read from their folder."""
    return bool(session.scalar(select(exists().where(ModelVersionFile.version_id == version.id))))


def write_model_files(session: Session, version: ModelVersion, folder: str | Path) -> int:
    """Write the version's stored files into `folder` (an empty staging folder: the caller makes
    it appear atomically), one file in memory at a time. Returns how many were written."""
    folder = Path(folder)
    names = session.execute(
        select(ModelVersionFile.name, ModelVersionFile.sha256).where(
            ModelVersionFile.version_id == version.id
        )
    ).all()
    for name, digest in names:
        data = session.scalar(select(ModelFile.data).where(ModelFile.sha256 == digest))
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"model {version.version}: {name} is damaged in the database")
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return len(names)
