"""Where the hub keeps its own files: the audit log, the data key, the embedded
broker and store when the config names none, the ferry's inbox and ledger.

``HUB_DATA_DIR`` when set (the Docker image points it at its volume), else
``data/`` beside the config file, so a checkout's hub and an installed one each
keep their files apart from the code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def data_dir(config: Mapping[str, Any]) -> Path:
    """The hub's data folder for ``config`` (a loaded config: ``__dir__`` is its folder)."""
    chosen = os.environ.get("HUB_DATA_DIR")
    if chosen:
        return Path(chosen).expanduser()
    return Path(config.get("__dir__") or os.getcwd()) / "data"
