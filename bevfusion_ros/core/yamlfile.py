"""Reading a YAML file into plain data, with the one error message every config file gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bevfusion_ros.core.errors import BevFusionError


def load_yaml(path: Path | str, what: str, error: type[BevFusionError]) -> Any:
    """``path``'s YAML content; a missing file or invalid YAML raises ``error`` naming ``what`` and the path."""
    p = Path(path)
    if not p.is_file():
        msg = f"{what} {p} does not exist"
        raise error(msg)
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        msg = f"{what} {p} is not valid YAML: {exc}"
        raise error(msg) from None
