"""The coordinator's names (states, policies, devices) for the add-on and the ``framehive`` command: imported from
protocol/vocabulary.py, never typed again here.

Installed as ``framehive.addon`` (the artist's pip install, the repository) the add-on finds the module at
``framehive.protocol.vocabulary``. Blender imports the extension without the framehive package, as
``bl_ext.<repository>.framehive``, so scripts/build_addon.py puts a copy of protocol/'s pure modules in the zip as
the subpackage ``_protocol``, which is taken first when it is there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

VENDORED = f"{__package__}._protocol"  # the subpackage the extension zip carries

if TYPE_CHECKING:  # one source for the type checker: the repository's own module
    from framehive.protocol.vocabulary import (
        CheckState,
        ClaimState,
        Device,
        FrameState,
        JobState,
        Policy,
        TaskState,
        Verdict,
    )
else:
    try:
        from ._protocol.vocabulary import (
            CheckState,
            ClaimState,
            Device,
            FrameState,
            JobState,
            Policy,
            TaskState,
            Verdict,
        )
    except ModuleNotFoundError as exc:
        if exc.name != VENDORED:  # the copy is there but broken: say so, do not hide it behind another copy
            raise
        from framehive.protocol.vocabulary import (
            CheckState,
            ClaimState,
            Device,
            FrameState,
            JobState,
            Policy,
            TaskState,
            Verdict,
        )

__all__ = ["CheckState", "ClaimState", "Device", "FrameState", "JobState", "Policy", "TaskState", "Verdict"]
