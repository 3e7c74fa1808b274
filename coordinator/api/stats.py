"""Network statistics: the whole network's for admins, an account's own for anyone else."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import stats
from ..auth import require
from .events import viewer_account

bp = Blueprint("stats", __name__)


@bp.get("/stats")
@require("user", "worker")
def overview():
    return jsonify(stats.overview(viewer_account()))
