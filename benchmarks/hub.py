"""Spawn-to-ready through a real JupyterHub, and ``docker stop`` time.

``python -m benchmarks.hub --image IMAGE [--reps N]`` (or, inside the full
runner, :func:`bench_hub`). Uses the hub harness of the tests
(``tests/hub/harness.py``: JupyterHub + DockerSpawner + configurable-http-
proxy, all on 127.0.0.1 and the Docker bridge). For each spawn mode
(the image CMD; ``cmd jupyterhub-singleuser``; uid 4242 with a read-only
root) and each repetition, modes interleaved:

- ``spawn_to_ready``: ``POST /hub/api/users/<u>/server`` until the hub's
  user model says the server is ready (the hub has seen it answer);
- ``first_status``: from the same POST until ``/user/<u>/api/status``
  answers 200 through the public proxy with the user's token;
- ``hub_stop``: ``DELETE /hub/api/users/<u>/server`` until the hub has it
  stopped (DockerSpawner's ``docker stop`` + removal, ``remove=True``).

And ``docker_stop``: the image run with ``docker run -d`` (its CMD, a plain
lab with token auth), ready on /api/status,
then ``docker stop`` timed (Docker's 10-s grace period: ~10 s means the
container ignored SIGTERM and was killed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.hub.harness import MODES, Hub, HubError, free_port, hub_python_5


def _log(message: str) -> None:
    print(f"[bench-hub {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def _summary(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values), "n": len(values), "all": values}


def _wait_status(hub: Hub, user: str, token: str, start: float,
                 timeout: float = 120) -> float:
    while time.monotonic() - start < timeout:
        status, _, _ = hub.request("GET", f"/user/{user}/api/status", token=token)
        if status == 200:
            return time.monotonic() - start
        time.sleep(0.05)
    raise hub.fail(f"/user/{user}/api/status never answered 200")


def bench_hub_spawns(image: str, reps: int, workdir: Path,
                     hub_python: str = sys.executable) -> dict[str, Any]:
    """Spawn and stop every mode ``reps`` times through one hub."""
    hub = Hub(python=hub_python, image=image, workdir=workdir)
    times: dict[str, dict[str, list[float]]] = {
        m.user: {"spawn_to_ready": [], "first_status": [], "hub_stop": []}
        for m in MODES}
    errors: dict[str, str] = {}
    try:
        hub.start()
        for rep in range(reps):
            order = MODES if rep % 2 == 0 else MODES[::-1]
            for mode in order:
                if mode.user in errors:
                    continue
                start = time.monotonic()
                try:
                    spawned = hub.spawn(mode)
                except HubError as err:
                    errors[mode.user] = str(err).splitlines()[0]
                    _log(f"{mode.user}: spawn failed: {errors[mode.user]}")
                    continue
                first = _wait_status(hub, mode.user, spawned.token, start)
                stop = hub.stop_server(mode.user)
                t = times[mode.user]
                t["spawn_to_ready"].append(spawned.seconds_to_ready)
                t["first_status"].append(first)
                t["hub_stop"].append(stop)
                _log(f"{mode.user} #{rep + 1}: ready {spawned.seconds_to_ready:.2f} s,"
                     f" status {first:.2f} s, stop {stop:.2f} s")
    finally:
        hub.stop()
    out: dict[str, Any] = {"hub_version": hub.version, "image": image,
                           "errors": errors, "modes": {}}
    for mode in MODES:
        t = times[mode.user]
        if t["spawn_to_ready"]:
            out["modes"][mode.user] = {
                "description": mode.description,
                **{k: _summary(v) for k, v in t.items()}}
    return out


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          timeout=300, check=check)


def bench_docker_stop(image: str, reps: int) -> dict[str, Any]:
    """Time ``docker stop`` of a ready lab started with the image CMD."""
    commands: dict[str, list[str]] = {"image-cmd": []}
    out: dict[str, Any] = {}
    for name, cmd in commands.items():
        values: list[float] = []
        for _ in range(reps):
            port = free_port()
            token = "bench"
            cid = _docker("run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8888",
                          "-e", f"JUPYTER_TOKEN={token}", image, *cmd).stdout.strip()
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        req = urllib.request.Request(
                            f"http://127.0.0.1:{port}/api/status",
                            headers={"Authorization": f"token {token}"})
                        with urllib.request.urlopen(req, timeout=5) as resp:
                            if resp.status == 200:
                                break
                    except (OSError, urllib.error.URLError):
                        time.sleep(0.1)
                else:
                    raise RuntimeError(f"{image} {cmd}: lab not ready in 120 s")
                start = time.monotonic()
                _docker("stop", cid)
                values.append(time.monotonic() - start)
            finally:
                _docker("rm", "-f", cid, check=False)
        out[name] = _summary(values)
        _log(f"docker stop ({name}): median {out[name]['median']:.2f} s")
    return out


def bench_hub(image: str, reps: int = 3,
              hub_python: str = sys.executable) -> dict[str, Any]:
    """Run both measurements; the runner's entry point."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nublado-bench-hub-") as tmp:
        spawns = bench_hub_spawns(image, reps, Path(tmp), hub_python)
    stop = bench_docker_stop(image, reps)
    return {"spawns": spawns, "docker_stop": stop,
            "loadavg_1min": [load_before[0], os.getloadavg()[0]],
            "cpus": os.cpu_count()}


def table(result: dict[str, Any]) -> str:
    """Return a Markdown table of :func:`bench_hub`'s result."""
    spawns = result["spawns"]
    load = result.get("loadavg_1min", [0, 0])
    lines = [f"JupyterHub {spawns['hub_version']}, image `{spawns['image']}`; "
             f"{result.get('cpus')} CPUs, 1-min load {load[0]:.1f} before, "
             f"{load[1]:.1f} after; median (min-max, n)",
             "",
             "| mode | spawn-to-ready (s) | first /api/status (s) | hub stop (s) |",
             "|---|---|---|---|"]

    def cell(s: dict[str, Any]) -> str:
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}, n={s['n']})"

    for user, m in spawns["modes"].items():
        lines.append(f"| {user} | {cell(m['spawn_to_ready'])} | "
                     f"{cell(m['first_status'])} | {cell(m['hub_stop'])} |")
    for user, err in spawns["errors"].items():
        lines.append(f"| {user} | spawn fails: {err[:120]} | | |")
    lines += ["", "| `docker run` + `docker stop` | stop (s) |", "|---|---|"]
    for name, s in result["docker_stop"].items():
        lines.append(f"| {name} | {cell(s)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hub",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--image", required=True,
                        help="a payload image (e.g. scipy-lab:test)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--hub", choices=["5", "6"], default="6",
                        help="hub major: 6 is the dev venv's, 5 the hash-locked "
                        "venv of the tests (.venv-hub5); give an image built "
                        "on a base of the same major")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "hub.json")
    args = parser.parse_args()
    python = hub_python_5() if args.hub == "5" else sys.executable
    result = bench_hub(args.image, args.reps, python)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
