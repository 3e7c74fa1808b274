"""What the "Test connection" button says: is the coordinator reachable, is the token good, do versions fit.

No ``bpy`` here: the preferences' button calls :func:`check` and shows its one-line answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .client import CLIENT_VERSION, ApiError, Client, ConnectionFailed, InvalidSetting
from .refusals import token_refusal

# The coordinator's API is /api/v1; within it, versions with the same major number (same minor before 1.0)
# speak the same dialect.
ENABLE_ONLINE_ACCESS = ("Blender's online access is off: enable Preferences > System > Network > "
                        "Allow Online Access (or start Blender with --online-mode)")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


def compatible(coordinator_version: str, client_version: str = CLIENT_VERSION) -> bool:
    """Same major version (same major and minor while the major is 0)."""
    try:
        theirs = [int(part) for part in coordinator_version.split(".")[:2]]
        ours = [int(part) for part in client_version.split(".")[:2]]
    except ValueError:
        return False
    if len(theirs) < 2 or len(ours) < 2:
        return False
    return theirs == ours if ours[0] == 0 else theirs[0] == ours[0]


def check(url: str, token: str, online_access: bool = True) -> Verdict:
    """Walk the path a submission takes and say where it breaks, in words an artist can act on."""
    if not online_access:
        return Verdict(False, ENABLE_ONLINE_ACCESS)
    if not url.strip():
        return Verdict(False, "enter the coordinator URL (e.g. http://render.example:8400)")
    token = token.strip()
    if not token:
        return Verdict(False, "enter your Framehive token (ask the network's admin for a user token)")
    try:
        client = Client(url, token, timeout=10)
    except InvalidSetting as exc:  # e.g. a token pasted with a line break: it could not even be sent
        return Verdict(False, exc.message)
    try:
        health = client.health()
    except ConnectionFailed as exc:
        return Verdict(False, f"{exc.message}: check the URL and that the coordinator is running")
    except ApiError as exc:
        return Verdict(False, f"{client.base_url} does not look like a Framehive coordinator ({exc})")
    version = health.get("version")
    if not isinstance(version, str) or health.get("status") != "ok":
        return Verdict(False, f"{client.base_url} does not look like a Framehive coordinator (its health report "
                              "has no version)")
    if not compatible(version):
        return Verdict(False, f"version mismatch: the coordinator runs {version}, this add-on is "
                              f"{CLIENT_VERSION}; update the add-on (or ask the admin which version to use)")
    try:
        me = client.me()
        token_info, account_info = me.get("token"), me.get("account")
        kind = token_info.get("kind") if isinstance(token_info, dict) else None
        account = account_info.get("name", "?") if isinstance(account_info, dict) else "?"
        if kind not in ("user", "admin"):
            return Verdict(False, f"this is a {kind or 'unknown'} token of account {account}; rendering from "
                                  "Blender needs a user token (fhu_...)")
        balance = client.balance().get("balance")
    except ConnectionFailed as exc:
        return Verdict(False, f"the coordinator stopped answering: {exc.message}")
    except ApiError as exc:
        refused = token_refusal(exc, "read the account")
        return Verdict(False, refused or f"the coordinator answered with an error: {exc}")
    caution = "; this is an admin token: it works, but a user token is safer to keep in Blender" \
        if kind == "admin" else ""
    return Verdict(True, f"connected to {client.base_url} (coordinator {version}) as {account}; "
                         f"balance {balance} points{caution}")

