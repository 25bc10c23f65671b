"""Where templates live: the built-in ones (the source tree's, else the copy installed
with us) behind an admin's overrides."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import jinja2
from jinja2.loaders import split_template_path

SOURCE_TREE = Path(__file__).resolve().parents[1] / "templates"


def builtin_templates(kind: str) -> Path:
    """``templates/<kind>`` (``mail`` or ``web``) of the source tree or of the install."""
    here = SOURCE_TREE / kind
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "mailgate" / "templates" / kind


class OverridableLoader(jinja2.BaseLoader):
    """Templates from an admin's directory, else the built-in ones.

    The admin's directory is asked for at each lookup (a reload may change it), and a
    cached template is up to date only while the same file would still be found first
    and is unchanged: an override added (or removed) after start takes effect at the
    next reload at the latest, without a restart.
    """

    def __init__(self, admin_directory: Callable[[], str], builtin: Path) -> None:
        self._admin = admin_directory
        self._builtin = builtin

    def _search(self) -> list[str]:
        admin = self._admin()
        return [admin, str(self._builtin)] if admin else [str(self._builtin)]

    def get_source(self, environment, template):  # type: ignore[no-untyped-def]
        found = jinja2.FileSystemLoader(self._search()).get_source(environment, template)
        source, filename, unchanged = found

        def uptodate() -> bool:
            return self._first_file(template) == filename and unchanged()

        return source, filename, uptodate

    def _first_file(self, template: str) -> str | None:
        pieces = split_template_path(template)
        for directory in self._search():
            path = os.path.join(directory, *pieces)
            if os.path.isfile(path):
                return os.path.normpath(path)
        return None
