"""Prints the project's runtime dependencies from pyproject.toml with its `train` extra (the
image retrains), one per line, for the image's dependency layer (installed before the code, so
code edits reuse it).

`tensorflow` is swapped for the requirement given as the second argument (the Dockerfile passes
`tensorflow-cpu==2.19.0`: the same `tensorflow` module without the CUDA kernels the image never
uses). setuptools is added because the project is then installed without build isolation.

    python requirements.py pyproject.toml tensorflow-cpu==2.19.0
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, tensorflow: str) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    lines = []
    project = data["project"]
    for dependency in [*project["dependencies"], *project["optional-dependencies"]["train"]]:
        name = re.match(r"[A-Za-z0-9._-]+", dependency)
        is_tf = name is not None and name.group().lower() == "tensorflow"
        lines.append(tensorflow if is_tf else dependency)
    return [*lines, *data["build-system"]["requires"]]


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]), sys.argv[2])))
