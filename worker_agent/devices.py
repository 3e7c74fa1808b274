"""Choose the Cycles device a worker renders on, from the devices its Blender reported.

Pure logic (no bpy): the list comes from the render runner's ``ready`` event, entries shaped like
``{"backend": "OPTIX", "name": "NVIDIA GeForce RTX 4090", "id": "..."}``; the CPU is always among them.
"""

from __future__ import annotations

from typing import Any

# Best first. OptiX and CUDA list the same NVIDIA cards; OptiX uses their ray-tracing cores, so it wins.
BACKEND_PREFERENCE = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")
AUTO = "AUTO"
CPU = "CPU"


class DeviceUnavailable(ValueError):
    """The requested device kind is unknown or not present on this machine."""


def choose_device(requested: str, devices: list[dict[str, Any]]) -> str:
    """The backend to render on: ``requested`` ("auto", "cpu", "optix", ...) checked against ``devices``.

    "auto" picks the best GPU backend present, else the CPU. A named backend must be present (the CPU always
    is), otherwise :class:`DeviceUnavailable` says what was found instead.
    """
    wanted = requested.strip().upper()
    present = {str(device.get("backend", "")).upper() for device in devices} | {CPU}
    if wanted == AUTO:
        return next((backend for backend in BACKEND_PREFERENCE if backend in present), CPU)
    if wanted not in (CPU, *BACKEND_PREFERENCE):
        choices = ", ".join(name.lower() for name in (AUTO, CPU, *BACKEND_PREFERENCE))
        raise DeviceUnavailable(f"unknown device {requested!r}; choose one of: {choices}")
    if wanted not in present:
        raise DeviceUnavailable(f"no {wanted} device on this machine; found: {describe(devices)}")
    return wanted


def describe(devices: list[dict[str, Any]]) -> str:
    """A one-line human summary such as ``OPTIX: RTX 4090, CUDA: RTX 4090, CPU: AMD EPYC``."""
    parts = [f"{device.get('backend', '?')}: {device.get('name', '?')}" for device in devices]
    if not any(str(device.get("backend", "")).upper() == CPU for device in devices):
        parts.append("CPU")
    return ", ".join(parts)
