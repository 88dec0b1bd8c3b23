"""Keep TensorFlow's native log lines off the user's terminal and the bot's log.

TensorFlow 2.19 logs from C++ through absl before absl::InitializeLog() is called, so those lines
go straight to the process's stderr whatever TF_CPP_MIN_LOG_LEVEL says: CUDA plugin registration
at import, "PredictCost" from the graph optimizer at the first call. No setting turns them off,
so the command line's edge routes file descriptor 2 through a pipe and a thread that drops
lines in absl's native format ("W0000 00:00:... file.cc:123] ...") and passes everything else
on: our messages, Python's logging, tracebacks and fatal native errors still show. Child
processes (retraining) inherit the same pipe. FLOWERBOT_NATIVE_LOGS=1 keeps everything.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's prefix: severity, MMDD, time, thread id, file:line]. Fatal ("F") lines are kept. And
# LiteRT's one line per interpreter, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
NATIVE_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)
_installed = False


def filter_native_logs() -> None:
    """Route fd 2 through the filter; idempotent, and a no-op when asked to keep native logs."""
    global _installed
    if _installed or os.environ.get("FLOWERBOT_NATIVE_LOGS") == "1":
        return
    _installed = True
    # TensorFlow's own logger does listen to this (3: fatal only); set before its import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        pending = b""
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not NATIVE_LINE.match(line):
                    os.write(terminal, line + b"\n")
            if b"\r" in pending:  # a progress bar redrawing its line: show it now
                shown, _, pending = pending.rpartition(b"\r")
                os.write(terminal, shown + b"\r")
        if pending and not NATIVE_LINE.match(pending):
            os.write(terminal, pending)
        os.close(read_end)

    thread = threading.Thread(target=forward, name="native-log-filter", daemon=True)
    thread.start()

    def restore() -> None:  # at exit: close our end of the pipe, let the thread drain it
        sys.stderr.flush()
        os.dup2(terminal, 2)
        thread.join(timeout=2)

    atexit.register(restore)
