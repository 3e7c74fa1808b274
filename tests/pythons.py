"""Python interpreters other than the test environment's: pristine ones (only pip installed) for the tests that
prove a command or an install works without the development environment, and venvs made from them."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

PYENV = Path.home() / ".pyenv" / "versions"


def find_python(version: str) -> Path | None:
    """An interpreter of ``version`` ("3.12"): pyenv's, else ``python3.12`` on PATH; None when there is none."""
    for candidate in sorted(PYENV.glob(f"{version}.*/bin/python{version}"), reverse=True):
        return candidate
    found = shutil.which(f"python{version}")
    return Path(found) if found else None


def is_pristine(python: Path) -> bool:
    """Whether ``python`` (run isolated, ``-I``) has nothing installed but pip."""
    listed = subprocess.run([str(python), "-I", "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, timeout=60)
    names = {line.split("==")[0].lower() for line in listed.stdout.split()}
    return listed.returncode == 0 and names <= {"pip", "setuptools", "wheel"}


def missing_python(version: str) -> str:
    """What a test says when there is no Python ``version``: it fails in CI (CI=true), where every interpreter the
    tests need is installed; elsewhere the caller may skip with this reason."""
    return f"no Python {version} here (pyenv or PATH); this test needs it"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def make_venv(python: Path, where: Path) -> Path:
    """A fresh venv of ``python`` at ``where``; its bin folder."""
    subprocess.run([str(python), "-m", "venv", str(where)], check=True, capture_output=True, timeout=120)
    return where / "bin"


def pip_install(bin_dir: Path, *requirements: str, cwd: Path) -> None:
    """``pip install REQUIREMENT...`` in the venv of ``bin_dir``, run from ``cwd`` (no bytecode compiled: time)."""
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-compile", *requirements], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def cached_venv(python: Path, where: Path, install: Callable[[Path], None]) -> Path:
    """The venv at ``where``, made with ``python`` and filled by ``install(bin_dir)`` the first time, reused by later
    runs; its bin folder. ``where``'s name ends in ``-KEY``, a digest of what it holds: folders beside it with the
    same name but another key (what an older requirement built) are removed once this one is complete. A lock file
    keeps two test runs from building it at once; a build that did not complete is started again."""
    where.parent.mkdir(parents=True, exist_ok=True)
    complete = where / ".complete"
    with open(where.parent / f"{where.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            shutil.rmtree(where, ignore_errors=True)
            install(make_venv(python, where))
            complete.write_text("")
        stem = where.name.rpartition("-")[0]
        for older in where.parent.glob(f"{stem}-*"):
            if older != where and older.is_dir():
                shutil.rmtree(older, ignore_errors=True)
                older.with_name(f"{older.name}.lock").unlink(missing_ok=True)
    return where / "bin"
