"""What ``framehive submit`` and ``status`` say a job needs: the coordinator's words, printable only."""

from __future__ import annotations

from framehive.addon.cli import describe_requirements


def test_the_command_line_shows_the_coordinators_words_printable_only() -> None:
    assert describe_requirements({"summary": "Blender ≥ 5.0, a GPU"}) == "Blender ≥ 5.0, a GPU"
    assert describe_requirements({"summary": "\x1b]0;pwned\x07Blender\n"}) == "]0;pwnedBlender"
    assert describe_requirements({"summary": 5}) == describe_requirements(None) == "any agent"
