"""Where the agent's worker token comes from: ``FRAMEHIVE_TOKEN``, or a file only its owner can read.

A token on the command line (``--token``) is shown by ``ps`` to every user of the machine, for as long as the
agent runs: it still works, for old scripts, with a warning. ``--token-file PATH`` reads the first line of a
file that no one else may read (on POSIX: no group or other permission bits, like ssh's private keys).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

ENV_TOKEN = "FRAMEHIVE_TOKEN"
# A token file is a line; anything much longer is not one (and is not read whole).
MAX_TOKEN_FILE = 4096
ARGV_WARNING = (f"--token puts the token where `ps` shows it to every user of this machine; set {ENV_TOKEN} or "
                "use --token-file PATH instead")


class TokenError(ValueError):
    """No usable token; the message says what to do."""


def resolve(flag: str | None, token_file: Path | None, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The token and warnings for the owner, from ``--token-file``, ``--token`` or the environment."""
    if flag is not None and token_file is not None:
        raise TokenError("give the token one way: --token-file PATH or the FRAMEHIVE_TOKEN variable")
    if token_file is not None:
        return read_token_file(token_file), []
    if flag is not None:
        return check_token(flag, "--token"), [ARGV_WARNING]
    if environ.get(ENV_TOKEN):
        return check_token(environ[ENV_TOKEN], ENV_TOKEN), []
    raise TokenError(f"no worker token: set {ENV_TOKEN} or pass --token-file PATH")


def read_token_file(path: Path, posix: bool = os.name == "posix") -> str:
    """The token in ``path``: one line (one trailing newline is dropped). On POSIX the file must be readable by
    its owner only; ``posix=False`` is how Windows reads it (its permissions are ACLs, which this does not
    check)."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise TokenError(f"{path} is not a file")
            if posix and info.st_mode & 0o077:
                raise TokenError(f"{path} can be read or changed by other users of this machine (mode "
                                 f"{stat.S_IMODE(info.st_mode):03o}); run: chmod 600 {path}")
            raw = handle.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        raise TokenError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_TOKEN_FILE:
        raise TokenError(f"{path} is too long to be a token file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise TokenError(f"{path} holds characters tokens never hold") from None
    return check_token(text.removesuffix("\n").removesuffix("\r"), str(path))


def check_token(token: str, source: str) -> str:
    """A token is printable ASCII without spaces (it goes into an HTTP header as it is)."""
    if not token:
        raise TokenError(f"the token from {source} is empty")
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        raise TokenError(f"the token from {source} holds a space, a line break or another character tokens never "
                         "hold (one trailing newline is allowed in a token file)")
    return token
