"""Upload throughput into S3-compatible storage: through the coordinator vs straight to the store (presigned PUT).

One real coordinator process (gunicorn, ``--storage s3://…``) in front of moto's standalone server on loopback.
"proxied" is a blob's PUT to the coordinator (``PUT /api/v1/blobs/<sha>``: the coordinator hashes the body, then
sends it on to the store); "presigned" is the artist client's ``upload_blob`` on such a coordinator (a presigned PUT
to a staging key, then the coordinator's confirmation: it reads the object back, hashes it, and copies it inside the
store). Two workloads: a few large blobs (scenes, textures) and many frame-sized ones. Every blob is fresh random
bytes (nothing deduplicated); the cases alternate within one run; the store is emptied between cases. The
coordinator's CPU time per case is read from /proc (its gunicorn worker). Everything shares one machine, so
loopback stands in for the network: it shows what the coordinator spends, not what a WAN would give.

    .venv/bin/python -m benchmarks.uploads --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests
from framehive.addon.client import Client

from tests.farm import Farm
from tests.live import mint_tokens
from tests.s3 import MotoServer

MiB = 1024 * 1024
WORKLOADS = {"large": (4, 32 * MiB), "small": (150, 64 * 1024)}  # (blobs, bytes each)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def make_files(folder: Path, count: int, size: int) -> list[tuple[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        data = os.urandom(size)
        path = folder / f"{index}.bin"
        path.write_bytes(data)
        files.append((hashlib.sha256(data).hexdigest(), path))
    return files


def proxied(farm: Farm, token: str, files: list[tuple[str, Path]]) -> None:
    with requests.Session() as session:
        for sha, path in files:
            with path.open("rb") as body:
                answer = session.put(f"{farm.url}/api/v1/blobs/{sha}", data=body, timeout=300, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
            assert answer.status_code == 201, answer.text


def presigned(farm: Farm, token: str, files: list[tuple[str, Path]]) -> None:
    with Client(farm.url, token, timeout=300) as client:
        for sha, path in files:
            assert client.upload_blob(path, sha)["existed"] is False


def empty(moto: MotoServer, bucket: str) -> None:
    s3 = moto.client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="times each case runs (alternating)")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="framehive-uploads-"))
    moto = MotoServer(root / "moto")
    farm: Farm | None = None
    try:
        moto.start()
        bucket = moto.create_bucket()
        os.environ.update(moto.environment())
        os.environ.update({"FRAMEHIVE_STORAGE_QUOTA": "0", "FRAMEHIVE_WRITE_RATE": "100000",
                           "FRAMEHIVE_WRITE_BURST": "100000"})
        farm = Farm(root / "farm", coordinator_args=["--storage", f"s3://{bucket}/bench"])
        farm.start_coordinator()
        token = mint_tokens(farm, artist=("user", "artist"))["artist"]
        pid = farm.serving_pid()
        rows = []
        for round_ in range(args.rounds):
            for workload, (count, size) in WORKLOADS.items():
                for case, upload in (("proxied", proxied), ("presigned", presigned)):
                    files = make_files(root / f"{round_}-{workload}-{case}", count, size)
                    cpu, start = cpu_seconds(pid), time.perf_counter()
                    upload(farm, token, files)
                    wall, used = time.perf_counter() - start, cpu_seconds(pid) - cpu
                    total = count * size
                    rows.append({"round": round_ + 1, "workload": f"{count} x {size // 1024} KiB", "case": case,
                                 "wall_s": round(wall, 2), "MiB_per_s": round(total / MiB / wall, 1),
                                 "blobs_per_s": round(count / wall, 1),
                                 "coordinator_cpu_s": round(used, 2)})
                    print(json.dumps(rows[-1]), flush=True)
                    shutil.rmtree(root / f"{round_}-{workload}-{case}")
                    empty(moto, bucket)
        print(json.dumps({"load": os.getloadavg()}))
    except BaseException:
        if farm is not None:
            print(farm.logs(), file=sys.stderr)
        raise
    finally:
        if farm is not None:
            farm.stop()
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
