"""Device selection on device lists shaped like what Cycles reports.

There is no GPU on the test machines, so these hand-written lists are the stand-in for real GPU workers:
entries copy the shape the render runner builds from ``get_devices_for_type`` (backend = Cycles' device
type, Cycles' name and persistent id). The CPU-only list is what this machine's Blender really reports.
"""

import pytest
from framehive.worker_agent.devices import BACKEND_PREFERENCE, DeviceUnavailable, choose_device, describe

CPU = {"backend": "CPU", "name": "AMD EPYC", "id": "CPU"}
RTX = "NVIDIA GeForce RTX 4090"
NVIDIA = [  # Cycles lists an NVIDIA card twice: once for OptiX, once for CUDA
    {"backend": "OPTIX", "name": RTX, "id": f"CUDA_{RTX}_0000:01:00_OptiX"},
    {"backend": "CUDA", "name": RTX, "id": f"CUDA_{RTX}_0000:01:00"},
    CPU,
]
AMD = [{"backend": "HIP", "name": "AMD Radeon RX 7900 XTX", "id": "HIP_AMD Radeon RX 7900 XTX_0000:03:00"}, CPU]
APPLE = [{"backend": "METAL", "name": "Apple M2 Max", "id": "METAL_Apple M2 Max"}, CPU]
INTEL = [{"backend": "ONEAPI", "name": "Intel(R) Arc(TM) A770 Graphics", "id": "ONEAPI_Intel Arc_0000:04:00"}, CPU]


@pytest.mark.parametrize(
    ("devices", "expected"),
    [([CPU], "CPU"), (NVIDIA, "OPTIX"), (NVIDIA[1:], "CUDA"), (AMD, "HIP"), (APPLE, "METAL"), (INTEL, "ONEAPI")],
)
def test_auto_picks_the_best_backend_present(devices, expected):
    assert choose_device("auto", devices) == expected


def test_auto_prefers_optix_over_every_other_backend_on_a_mixed_machine():
    assert choose_device("AUTO", AMD + INTEL + NVIDIA) == "OPTIX"
    assert BACKEND_PREFERENCE[0] == "OPTIX"


def test_auto_without_any_device_list_still_has_the_cpu():
    assert choose_device("auto", []) == "CPU"


@pytest.mark.parametrize("requested", ["cpu", "CPU", " Cpu "])
def test_cpu_is_always_available(requested):
    assert choose_device(requested, NVIDIA) == "CPU"
    assert choose_device(requested, []) == "CPU"


@pytest.mark.parametrize(("requested", "expected"), [("cuda", "CUDA"), ("OptiX", "OPTIX")])
def test_a_named_backend_present_is_chosen_case_insensitively(requested, expected):
    assert choose_device(requested, NVIDIA) == expected


def test_a_missing_backend_is_refused_with_what_was_found():
    with pytest.raises(DeviceUnavailable) as caught:
        choose_device("cuda", AMD)
    message = str(caught.value)
    assert "CUDA" in message
    assert "HIP: AMD Radeon RX 7900 XTX" in message
    assert "CPU: AMD EPYC" in message


def test_an_unknown_device_name_is_refused_with_the_choices():
    with pytest.raises(DeviceUnavailable, match="auto, cpu, optix"):
        choose_device("vulkan", NVIDIA)


def test_device_unavailable_is_a_value_error():
    assert issubclass(DeviceUnavailable, ValueError)


def test_describe_always_mentions_the_cpu():
    assert describe([]) == "CPU"
    assert describe(AMD) == "HIP: AMD Radeon RX 7900 XTX, CPU: AMD EPYC"
