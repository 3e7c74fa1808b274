"""Benchmark: can a verifier tell ringers from real checks by what it receives?

Run from the repository root::

    .venv/bin/python -m benchmarks.ringer_blindness [--frames 150] [--ringer-rate 0.5] [--json PATH]

A real coordinator (its own process, loopback) with a real job of ``--frames`` frames, one per task; a renderer
agent and two verifier agents of three owners speak the real protocol over the real WebSocket and HTTP API
(they upload noise frames and honest crops of them instead of Blender renders: what is measured is what a
verifier is told, not what it renders). Each verifier records every ``verify`` order as it arrives, with the
time, and everything it could compute from its own history. After the run, the coordinator's database says
which orders were ringers. Two classifiers then try to tell ringers from real checks from those features, with
5-fold cross-validation: the best single feature with a threshold (chosen on the training folds only) and a
logistic regression over all features. Balanced accuracy 0.5 is chance.

Markdown goes to stdout, progress to stderr; ``--json`` also writes every number.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import io
import json
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from PIL import Image
from websockets.sync.client import ClientConnection, connect

WIDTH, HEIGHT = 64, 36
FOLDS = 5
FEATURES = ("frame", "frame_minus_max_seen", "frame_minus_last", "rect_area", "rect_x", "rect_y", "rect_w",
            "rect_h", "seconds_since_last_order", "seconds_since_last_done", "handle_first_byte",
            "handle_last_byte", "order_index", "frame_seen_before", "job_id", "orders_of_this_job")


def noise(job_id: int, frame: int) -> np.ndarray:
    """The pixels of a frame: what the honest renderer uploads and honest verifiers 'render'."""
    return np.random.default_rng(job_id * 100_000 + frame).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Agent:
    """One agent speaking the real protocol; renders noise, verifies honestly, records every verify order."""

    base_url: str
    token: str
    name: str
    roles: list[str]
    orders: list[dict[str, Any]] = field(default_factory=list)
    ws: ClientConnection | None = None
    worker_id: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with connect(self.base_url.replace("http://", "ws://") + "/api/v1/worker/ws", open_timeout=10,
                     additional_headers={"Authorization": f"Bearer {self.token}"}) as ws:
            self.ws = ws
            ws.send(m.encode(m.Hello(protocol=PROTOCOL_VERSION, name=self.name, agent_version="bench",
                                     blender_version="5.0.1", device="CPU", devices=[], threads=1,
                                     roles=self.roles)))
            welcome = m.decode(ws.recv(timeout=30))
            assert isinstance(welcome, m.Welcome), welcome
            self.worker_id = welcome.worker_id
            last_done = time.monotonic()
            while not self.stop.is_set():
                try:
                    message = m.decode(ws.recv(timeout=0.5), limit=m.MAX_ORDER_BYTES)
                except TimeoutError:
                    ws.send(m.encode(m.Heartbeat()))
                    continue
                if isinstance(message, m.Assign):
                    self._render(message)
                elif isinstance(message, m.Verify):
                    self.orders.append({"at": time.monotonic(), "last_done": last_done, **vars(message)})
                    self._verify(message)
                    last_done = time.monotonic()

    def _put(self, path: str, data: bytes) -> None:
        response = requests.put(self.base_url + path, data=data, timeout=30, headers={
            "Authorization": f"Bearer {self.token}", "X-Framehive-Worker": str(self.worker_id),
            "X-Content-SHA256": hashlib.sha256(data).hexdigest()})
        response.raise_for_status()

    def _render(self, order: m.Assign) -> None:
        assert self.ws is not None
        for frame in order.frames:
            self._put(order.upload_url.replace("{frame}", str(frame)), png(noise(order.job_id, frame)))
        self.ws.send(m.encode(m.TaskDone(task_id=order.task_id, attempt=order.attempt)))

    def _verify(self, order: m.Verify) -> None:
        assert self.ws is not None
        x, y, w, h = order.rect
        with contextlib.suppress(requests.HTTPError):  # a check voided meanwhile: 409, nothing to learn
            self._put(order.upload_url, png(noise(order.job_id, order.frame)[y:y + h, x:x + w]))
        self.ws.send(m.encode(m.CheckDone(handle=order.handle)))


def run_network(root: Path, frames: int, ringer_rate: float, verifiers: int = 3,
                timeout: float = 600) -> list[dict[str, Any]]:
    """One job through a real coordinator; returns every verify order with its label (``ringer``)."""
    from tests.farm import Farm, make_scene, wait_for
    from tests.live import mint_tokens

    settings = root / "coordinator.toml"
    root.mkdir(parents=True, exist_ok=True)
    settings.write_text(f"ringer_rate = {ringer_rate}\n")
    farm = Farm(root / "farm", coordinator_args=["--config", str(settings)])
    agents: list[Agent] = []
    threads: list[threading.Thread] = []
    try:
        farm.start_coordinator()
        owners = {f"verifier{i}": ("worker", f"verifier{i}") for i in range(1, verifiers + 1)}
        grant = {"FRAMEHIVE_STARTING_GRANT": 100 * frames + 1000}  # given when the artist's account is made
        tokens = mint_tokens(farm, grant, trusted_workers=False, artist=("user", "artist"), rob=("worker", "rob"),
                             **owners)
        agents = [Agent(farm.url, tokens["rob"], "rob-box", ["render"]),
                  *(Agent(farm.url, tokens[key], f"{key}-box", ["verify"]) for key in owners)]
        threads = [threading.Thread(target=a.run, daemon=True) for a in agents]
        for thread in threads:
            thread.start()
        from framehive.addon.client import Client

        client = Client(farm.url, tokens["artist"], timeout=30)
        scene = make_scene(root / "scene.blend", frames=frames)
        job = client.submit(scene, frames=f"1-{frames}", chunk=1)
        wait_for(lambda: client.job(job["id"])["state"] in ("completed", "failed"), timeout, "the job to finish",
                 interval=0.5)
        return _labelled(farm, [a for a in agents if "verify" in a.roles])
    finally:
        for agent in agents:
            agent.stop.set()
        for thread in threads:  # each sees its stop within a receive timeout, before the coordinator goes
            thread.join(timeout=10)
        farm.stop()


def _labelled(farm: Any, verifiers: list[Agent]) -> list[dict[str, Any]]:
    from framehive.coordinator.db import db
    from framehive.coordinator.models import Check
    from sqlalchemy import select

    from tests.live import farm_database

    with farm_database(farm):
        kinds = dict(db.session.execute(select(Check.handle, Check.kind)).all())
    samples = []
    for agent in verifiers:
        for order in agent.orders:
            kind = kinds.get(order["handle"])
            if kind is not None:  # a handle of an earlier lease of a re-leased check: unknown, left out
                samples.append({**order, "verifier": agent.name, "kind": kind, "ringer": kind == "ringer"})
    return samples


def features(samples: list[dict[str, Any]]) -> np.ndarray:
    """What each verifier could compute when an order arrived, from its own earlier orders only."""
    rows = []
    by_verifier: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_verifier.setdefault(sample["verifier"], []).append(sample)
    for orders in by_verifier.values():
        seen: list[dict[str, Any]] = []
        for order in sorted(orders, key=lambda o: o["at"]):
            same_job = [o for o in seen if o["job_id"] == order["job_id"]]
            x, y, w, h = order["rect"]
            raw = base64.urlsafe_b64decode(order["handle"] + "=" * (-len(order["handle"]) % 4))
            rows.append([
                order["frame"],
                order["frame"] - max((o["frame"] for o in same_job), default=order["frame"]),
                order["frame"] - (same_job[-1]["frame"] if same_job else order["frame"]),
                w * h, x, y, w, h,
                order["at"] - (seen[-1]["at"] if seen else order["at"]),
                order["at"] - order["last_done"],
                raw[0], raw[-1],
                len(seen),
                float(any(o["frame"] == order["frame"] for o in same_job)),
                order["job_id"],
                len(same_job),
            ])
            seen.append(order)
    return np.array(rows, dtype=float)


def _in_feature_order(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples in the order of features()' rows: by verifier, then by arrival."""
    by_verifier: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_verifier.setdefault(sample["verifier"], []).append(sample)
    return [o for orders in by_verifier.values() for o in sorted(orders, key=lambda o: o["at"])]


def labels(samples: list[dict[str, Any]]) -> np.ndarray:
    return np.array([o["ringer"] for o in _in_feature_order(samples)])


def balanced_accuracy(truth: np.ndarray, guess: np.ndarray) -> float:
    rates = [np.mean(guess[truth == cls] == cls) for cls in (True, False) if np.any(truth == cls)]
    return float(np.mean(rates))


def _fit_stump(x: np.ndarray, y: np.ndarray) -> tuple[int, float, bool]:
    """The feature, threshold and direction with the best balanced accuracy on (x, y)."""
    best = (0, 0.0, True, -1.0)
    for j in range(x.shape[1]):
        for threshold in np.unique(x[:, j]):
            for above in (True, False):
                guess = x[:, j] >= threshold if above else x[:, j] < threshold
                score = balanced_accuracy(y, guess)
                if score > best[3]:
                    best = (j, float(threshold), above, score)
    return best[0], best[1], best[2]


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 2000, rate: float = 0.1) -> np.ndarray:
    """Logistic regression by gradient descent, classes weighted to balance them, small L2."""
    weight = np.where(y, 0.5 / max(1, y.sum()), 0.5 / max(1, (~y).sum()))
    design = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(design.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(design @ beta, -30, 30)))
        beta -= rate * (design.T @ (weight * (p - y)) + 1e-3 * beta)
    return beta


def cross_validate(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """5-fold cross-validated balanced accuracy of the two classifiers, and which stump features they chose."""
    order = np.random.default_rng(seed).permutation(len(y))
    folds = np.array_split(order, FOLDS)
    stump = np.zeros(len(y), dtype=bool)
    logistic = np.zeros(len(y), dtype=bool)
    chosen = []
    for k in range(FOLDS):
        test = folds[k]
        train = np.concatenate([folds[i] for i in range(FOLDS) if i != k])
        j, threshold, above = _fit_stump(x[train], y[train])
        chosen.append(FEATURES[j])
        stump[test] = x[test, j] >= threshold if above else x[test, j] < threshold
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-9
        beta = _fit_logistic((x[train] - mean) / std, y[train])
        scores = np.hstack([(x[test] - mean) / std, np.ones((len(test), 1))]) @ beta
        logistic[test] = scores > 0
    n = len(y)
    return {"samples": n, "ringers": int(y.sum()), "stump": balanced_accuracy(y, stump),
            "logistic": balanced_accuracy(y, logistic), "stump_features": chosen,
            # Balanced accuracy of a guess with no information has about this standard deviation.
            "chance_sd": 0.25 * math.sqrt(1 / max(1, y.sum()) + 1 / max(1, (~y).sum()))}


def per_feature(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """Each feature's mean for ringers and for real checks (what a verifier would look for), and how well that
    feature alone tells them apart: the 5-fold cross-validated balanced accuracy of a threshold on it (its
    importance; 0.5 is none)."""
    folds = np.array_split(np.random.default_rng(seed).permutation(len(y)), FOLDS)
    result = {}
    for j, name in enumerate(FEATURES):
        guess = np.zeros(len(y), dtype=bool)
        for k in range(FOLDS):
            train = np.concatenate([folds[i] for i in range(FOLDS) if i != k])
            _, threshold, above = _fit_stump(x[train][:, [j]], y[train])
            guess[folds[k]] = x[folds[k], j] >= threshold if above else x[folds[k], j] < threshold
        result[name] = {"ringers": float(x[y, j].mean()) if y.any() else math.nan,
                        "real": float(x[~y, j].mean()) if (~y).any() else math.nan,
                        "alone": balanced_accuracy(y, guess)}
    return result


def markdown(result: dict[str, Any]) -> str:
    cv = result["cross_validation"]
    lines = [f"{result['frames']} frames, ringer rate {result['ringer_rate']}, {result['verifiers']} verifiers of "
             f"their own owners. Orders they saw: {cv['samples']} ({cv['ringers']} ringers); kinds: "
             f"{result['kinds']}.", "",
             "| classifier (5-fold cross-validated) | balanced accuracy (0.5 = chance) |", "|---|---:|",
             f"| best single feature with a threshold | {cv['stump']:.3f} (features chosen: "
             f"{', '.join(sorted(set(cv['stump_features'])))}) |",
             f"| logistic regression over all {len(FEATURES)} features | {cv['logistic']:.3f} |", "",
             f"A guess without information scores 0.5 ± {cv['chance_sd']:.3f} (one standard deviation).", "",
             "| feature | mean, ringers | mean, real checks | balanced accuracy alone (cross-validated) |",
             "|---|---:|---:|---:|"]
    for name, means in result["features"].items():
        lines.append(f"| {name} | {means['ringers']:.2f} | {means['real']:.2f} | {means['alone']:.3f} |")
    return "\n".join(lines)


def measure(root: Path, frames: int, ringer_rate: float, verifiers: int = 3) -> dict[str, Any]:
    samples = run_network(root, frames, ringer_rate, verifiers)
    x, y = features(samples), labels(samples)
    kinds: dict[str, int] = {}
    for sample in samples:
        kinds[sample["kind"]] = kinds.get(sample["kind"], 0) + 1
    return {"frames": frames, "ringer_rate": ringer_rate, "verifiers": verifiers, "kinds": kinds,
            "cross_validation": cross_validate(x, y), "features": per_feature(x, y),
            "samples": {"features": list(FEATURES), "x": x.tolist(), "ringer": y.tolist(),
                        "kind": [s["kind"] for s in _in_feature_order(samples)],
                        "verifier": [s["verifier"] for s in _in_feature_order(samples)],
                        "at": [s["at"] for s in _in_feature_order(samples)]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--ringer-rate", type=float, default=0.5)
    parser.add_argument("--verifiers", type=int, default=3, help="verifier agents, each of its own owner")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        result = measure(Path(directory), args.frames, args.ringer_rate, args.verifiers)
    result["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"wall {result['wall_seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
