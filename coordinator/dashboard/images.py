"""Image routes: frame thumbnails and previews, and the two crops of a verification check. The same
ownership rules as the data (scope.py); blobs are shrunk or cut by previews.py, never sent as uploaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response
from sqlalchemy import select

from .. import frame_analysis as fa
from ..db import db
from ..models import Check, Frame
from . import scope
from .blueprint import bp
from .previews import SIZES, NoPreview, preview
from .sessions import current_viewer, data_view, error

# A frame's address holds its blob's hash, so its image never changes; a check's crops change only if the
# check is judged again, which is rare.
FRAME_CACHE = "private, max-age=86400, immutable"
CHECK_CACHE = "private, max-age=300"


@bp.get("/img/jobs/<int:job_id>/frames/<int:number>/<sha256>/<size>.png")
@data_view
def frame_image(job_id: int, number: int, sha256: str, size: str):
    viewer = current_viewer()
    job = scope.job(viewer, job_id)
    frame = db.session.execute(select(Frame).filter_by(job_id=job_id, number=number)).scalar_one_or_none() \
        if job is not None else None
    if frame is None or size not in SIZES or scope.frame_pixels(viewer, frame) != sha256:
        return error(404, "not_found", "no such image")
    return _png(lambda: preview(sha256, None, SIZES[size]), FRAME_CACHE)


@bp.get("/img/checks/<int:check_id>/<side>.png")
@data_view
def check_image(check_id: int, side: str):
    check = db.session.get(Check, check_id)
    if check is None or side not in ("renderer", "verifier") or not scope.check_images(current_viewer(), check):
        return error(404, "not_found", "no such image")
    region = fa.Region.from_list(check.region)
    cut: fa.Region | None
    if side == "renderer":
        sha, cut = check.renderer_sha256, region
    elif check.kind == "tier1":  # the whole frame at low resolution (its render_rect is that size): shown whole
        sha, cut = check.result_sha256, None
    else:
        sha, cut = check.result_sha256, region.relative_to(fa.Region.from_list(check.render_rect))
    return _png(lambda: preview(str(sha), cut), CHECK_CACHE)


def _png(make: Callable[[], bytes], cache_control: str) -> Any:
    db.session.commit()  # no transaction held while decoding
    try:
        data = make()
    except NoPreview as exc:
        return error(422, "no_preview", str(exc))
    return Response(data, mimetype="image/png", headers={"Cache-Control": cache_control})
