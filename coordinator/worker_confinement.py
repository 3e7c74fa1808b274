"""What confines a worker's renders, as its hello says, and whether this coordinator accepts it.

An agent reports its confinement in its hello (``messages.Hello.confinement``:
framehive.worker_agent.confinement.status()).
That is the agent's own word, from a machine the coordinator cannot see: ``FRAMEHIVE_REQUIRE_CONFINEMENT`` keeps an
honest owner's misconfigured machine (an old kernel, Landlock switched off, macOS, Windows) off a network that
promises artists and owners confined renders, and says how to fix it. It proves nothing about a hostile owner, who
can send any report it likes; what protects artists from such owners is verification, not this.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from framehive.protocol import messages as m


def confined(report: dict[str, Any] | None) -> bool:
    """Whether the report says renders are confined (the file system at least); no report is not confined."""
    return bool(report and report.get("available") is True and report.get("filesystem") is True)


def summary(report: dict[str, Any] | None) -> str:
    """One line for people: "Landlock ABI 7", "Landlock ABI 3 (network not confined)", "none: <reason>"."""
    if report is None:
        return "not reported"
    if not confined(report):
        return f"none: {report.get('reason') or 'no reason given'}"
    text = f"{str(report.get('mechanism') or 'confined').capitalize()} ABI {report.get('abi', '?')}"
    return text if report.get("network") else f"{text} (network not confined)"


def refusal(report: dict[str, Any] | None) -> m.Error | None:
    """The hello's answer when this coordinator requires confined renders and the agent says it has none."""
    if not current_app.config["FRAMEHIVE_REQUIRE_CONFINEMENT"] or confined(report):
        return None
    return m.Error(code="unconfined", message=(
        f"this coordinator accepts only agents whose renders are confined, and this agent reports {summary(report)}; "
        "run it on Linux 5.13 or later with Landlock enabled (the agent's start log says what is missing)"))
