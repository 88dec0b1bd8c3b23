"""Makes sure Keras' ImageNet MobileNetV2 weights lie in $KERAS_HOME/models, so the bot never
downloads at start. Run at image build: the file may already be there (copied from the build
context's docker/keras/); otherwise it is downloaded from Keras' own URL. Either way its SHA-256
must match the genuine file's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

NAME = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
URL = f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{NAME}"
SHA256 = "e67de5246b7a227acd5f741cbeb290b525088e6c73483c0e5e71cf50f33e0c0f"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    target = Path(os.environ["KERAS_HOME"]) / "models" / NAME
    if target.exists():
        print(f"Keras weights from the build context: {target}")
    else:
        print(f"downloading {URL}")
        partial = target.with_suffix(".part")
        try:
            with urllib.request.urlopen(URL, timeout=120) as response, partial.open("wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
        except OSError as err:
            partial.unlink(missing_ok=True)
            print(
                f"cannot download the Keras weights ({err}). Without internet, put {NAME}"
                " into docker/keras/ in the build context and build again.",
                file=sys.stderr,
            )
            return 1
        partial.rename(target)
    if (actual := sha256(target)) != SHA256:
        print(f"{target}: SHA-256 {actual}, expected {SHA256}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
