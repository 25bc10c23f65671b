"""A small disk for the full-disk trial: a tmpfs the suite mounts and unmounts itself.

Mounting needs root (CAP_SYS_ADMIN); where it is not permitted ``small_disk`` raises
``Unavailable`` with the reason, and the trial is skipped (a failure with CI=true),
as it is when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

SMALL, LARGE = "8m", "256m"


class Unavailable(Exception):
    """The trial cannot run here; the message says why."""


@dataclass
class Disk:
    path: Path
    size: str = SMALL

    async def grow(self) -> None:
        """Room again: remount with ``LARGE`` bytes, keeping what is stored."""
        await _run("mount", "-o", f"remount,size={LARGE}", str(self.path))
        self.size = LARGE


@asynccontextmanager
async def small_disk(path: Path) -> AsyncIterator[Disk]:
    """A tmpfs of ``SMALL`` bytes mounted on ``path`` for the duration."""
    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    try:
        await _run("mount", "-t", "tmpfs", "-o", f"size={SMALL},mode=0700", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError) as error:
        reason = getattr(error, "stderr", "") or error
        raise Unavailable(f"cannot mount a tmpfs on {path}: {reason}") from error
    try:
        yield Disk(path)
    finally:
        try:
            await _run("umount", str(path))
        except subprocess.CalledProcessError:
            await _run("umount", "--lazy", str(path))  # never leave a mount behind


async def _run(*command: str) -> None:
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    if result.returncode:
        raise subprocess.CalledProcessError(result.returncode, command, stderr=result.stderr)
