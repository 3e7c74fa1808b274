"""The console scripts' entry points (setup.cfg): each command runs its role's ``main`` when the role's extra is
installed, and otherwise says in one line which extra to install, exit code 2, instead of an ImportError traceback.

Nothing here imports a third-party package: it must run in an install that has only some of the extras.
"""

from __future__ import annotations

import importlib
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from importlib import metadata

EXIT_USAGE = 2
# command -> (module with its main(), the extra of setup.cfg that brings what the module imports)
COMMANDS: dict[str, tuple[str, str]] = {
    "framehive": ("framehive.addon.cli", "artist"),
    "framehive-coordinator": ("framehive.coordinator.cli", "coordinator"),
    "framehive-worker": ("framehive.worker_agent.cli", "worker"),
}


def artist() -> int:
    """``framehive``."""
    return run("framehive")


def coordinator() -> int:
    """``framehive-coordinator``."""
    return run("framehive-coordinator")


def worker() -> int:
    """``framehive-worker``."""
    return run("framehive-worker")


def run(command: str) -> int:
    """Import the command's module and run its ``main``; a third-party module missing means the extra is not
    installed (a framehive module missing is a broken install: its traceback is kept)."""
    module_name, extra = COMMANDS[command]
    try:
        main: Callable[[], int] = importlib.import_module(module_name).main
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "framehive":
            raise
        print(f"{command} needs the {extra} extra (no module named {exc.name!r}): "
              f"pip install {install_argument(extra)}", file=sys.stderr)
        return EXIT_USAGE
    return main()


def install_argument(extra: str) -> str:
    """What to give pip to add ``extra`` to this install, quoted for a POSIX shell: the folder or git URL framehive
    was installed from (pip records it, PEP 610), else the bare name."""
    # Every framehive on the path: a checkout's own framehive.egg-info (the current folder on sys.path) holds no
    # record, the installed one does.
    recorded = next((text for dist in metadata.distributions(name="framehive")
                     if (text := dist.read_text("direct_url.json"))), None)
    try:
        origin = json.loads(recorded) if recorded else {}
    except ValueError:
        origin = {}
    url = origin.get("url") if isinstance(origin, dict) else None
    if isinstance(url, str) and url.startswith("file://"):
        return f"'{urllib.request.url2pathname(urllib.parse.urlsplit(url).path)}[{extra}]'"
    vcs = origin.get("vcs_info") if isinstance(origin, dict) else None
    if isinstance(url, str) and isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        return f"'framehive[{extra}] @ {vcs['vcs']}+{url}'"
    return f"'framehive[{extra}]'"
