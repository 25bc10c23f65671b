"""Where the built-in templates live: the source tree's, else the copy installed with us."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[1] / "templates"


def builtin_templates(kind: str) -> Path:
    """``templates/<kind>`` (``mail`` or ``web``) of the source tree or of the install."""
    here = SOURCE_TREE / kind
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "mailgate" / "templates" / kind
