"""The app's blob storage, opened once per app from ``FRAMEHIVE_STORAGE``."""

from __future__ import annotations

from flask import current_app

from .storage import LocalStorage


def storage() -> LocalStorage:
    return current_app.extensions["framehive_storage"]
