"""A verifier's region render is held to the check's size from its PNG header, before anything is decoded (the
frame upload's own gate is measured on a real coordinator in test_bombs.py)."""

from __future__ import annotations

import hashlib
import struct
import zlib

from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.models import Check
from framehive.coordinator.verification import leasing

from tests.coordinator.kit import noise_png, render


def header_only_png(width: int, height: int) -> bytes:
    """A signature and an IHDR claiming ``width`` x ``height``: all a decoder reads before it allocates."""
    body = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + body + struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def upload(app, token: str, check: Check, verifier_id: int, data: bytes):  # type: ignore[no-untyped-def]
    return app.test_client().put(
        f"/api/v1/worker/checks/{check.handle}/result", data=data,
        headers={"Authorization": f"Bearer {token}", "X-Framehive-Worker": str(verifier_id),
                 "X-Content-SHA256": hashlib.sha256(data).hexdigest()})


def test_a_region_render_of_the_wrong_size_is_refused_from_its_header(app, v):  # type: ignore[no-untyped-def]
    render(leases.claim_task(v["renderer"].id))
    db.session.commit()
    check = leasing.claim_check(v["verifier"])
    db.session.commit()
    token = create_token("worker", "verifier-agent", v["verifier"].account.name)
    for data in (header_only_png(13000, 13000), noise_png(1, 32, 18)):
        response = upload(app, token, check, v["verifier"].id, data)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "wrong_resolution"
    db.session.refresh(check)
    assert check.state == "leased" and check.verdict is None
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    crop = fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect)))
    assert upload(app, token, check, v["verifier"].id, crop).status_code == 201
    db.session.refresh(check)
    assert check.verdict == "pass"
