"""protocol/json_numbers.py: a JSON true or false is no number, whatever Python's bool being an int says."""

from __future__ import annotations

import json

from framehive.protocol.json_numbers import is_int, is_number


def test_decoded_booleans_are_not_numbers() -> None:
    decoded = json.loads('{"t": true, "f": false, "i": 3, "n": -1, "x": 2.5, "s": "4", "z": null}')
    assert [k for k, v in decoded.items() if is_int(v)] == ["i", "n"]
    assert [k for k, v in decoded.items() if is_number(v)] == ["i", "n", "x"]
