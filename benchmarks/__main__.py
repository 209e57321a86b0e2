"""Benchmarks: ``python -m benchmarks`` (or ``bash benchmarks/run``).

Every figure that is a comparison is measured side by side in the same run
(alternating order where it matters), because the machines are noisy. The
table goes to stdout; the numbers to ``benchmarks/results/latest.json``.
See ``benchmarks/RESULTS.md`` for a recorded run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nubladobuild.engine import find_build_client
from nubladobuild.profiles import (
    PROFILE_LABEL,
    lock_name,
    parse_lock,
    profile_names,
    profiles_dir,
)

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
SCIPY = REPO / "payloads" / "scipy-lab"
CA = Path("/etc/ssl/certs/ca-certificates.crt")
LAB_PYTHON = "/usr/local/share/jupyterlab/venv/bin/python"
PREFIX = "nb-bench"
BASE = f"{PREFIX}/base:run"
NB_TAG = f"{PREFIX}/scipy-lab:nublado"
PIP_TAG = f"{PREFIX}/scipy-lab:pip"
BASELINE_TAG = f"{PREFIX}/scipy-lab:baseline"
ADD_TAG = f"{PREFIX}/scipy-lab:plus-one"
EXTRA_PAYLOADS = {"bench-small-a": "requests\n", "bench-small-b": "pyyaml\ntoolz\n"}
ADDED_PACKAGE = "attrs"
MB = 1_000_000

_KERNEL_PROBE = r'''
import json, os, sys, time
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_core.paths import jupyter_data_dir

wrapped, python, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec_dir = os.path.join(jupyter_data_dir(), "kernels", "bench-direct")
os.makedirs(spec_dir, exist_ok=True)
with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
    json.dump({"argv": [python, "-m", "ipykernel_launcher", "-f",
                        "{connection_file}"],
               "display_name": "direct", "language": "python",
               "env": {"OMP_NUM_THREADS": "1"}}, f)
ksm = KernelSpecManager()
ksm.ensure_native_kernel = False
assert ksm.get_kernel_spec(wrapped).argv[0] != python, "kernel is not wrapped"


def start(name):
    t0 = time.monotonic()
    km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    took = time.monotonic() - t0
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return took


start(wrapped), start("bench-direct")  # warm-up: page cache, .pyc
times = {"wrapper": [], "direct": []}
for i in range(reps):
    order = [("wrapper", wrapped), ("direct", "bench-direct")]
    for key, name in order if i % 2 == 0 else order[::-1]:
        times[key].append(start(name))
print(json.dumps(times))
'''


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def run(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input_text,
                          env={**os.environ, **(env or {})}, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def timed(argv: list[str],
          **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = run(argv, **kwargs)
    return time.monotonic() - start, proc


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["docker", *args], check=check)


def inspect(image: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(docker("image", "inspect", image).stdout)[0]
    return data


def layers(image: str) -> list[str]:
    return list(inspect(image)["RootFS"]["Layers"])


def size(image: str) -> int:
    return int(inspect(image)["Size"])


def prune_cache_mounts() -> None:
    """Empty BuildKit's cache mounts (the pip and uv caches): a cold start.

    ``--no-cache`` on both builds takes care of the layer cache; the cache
    mounts survive it, so they are pruned before every cold build.
    """
    docker("builder", "prune", "-af", "--filter", "type=exec.cachemount")


def nublado(*args: str) -> list[str]:
    return [sys.executable, "-m", "nubladobuild", *args]


def nublado_build(payload: Path, tag: str, *extra: str) -> tuple[float, str]:
    seconds, proc = timed(nublado("build", str(payload), "--base", BASE, "--tag", tag,
                                  "--ca-bundle", str(CA), *extra))
    return seconds, proc.stderr


def baseline_context(tmp: Path) -> Path:
    ctx = tmp / "baseline-context"
    shutil.copytree(HERE / "baseline", ctx)
    shutil.copy(SCIPY / "requirements.txt", ctx / "requirements.txt")
    return ctx


def baseline_build(ctx: Path, *extra: str) -> float:
    client = find_build_client()
    seconds, _ = timed([*client.argv, "--progress=plain", *extra,
                        "--secret", f"id=ca,src={CA}",
                        "--build-arg", f"BASE_IMAGE={BASE}", "-t", BASELINE_TAG,
                        str(ctx)], env=client.env)
    return seconds


def step_seconds(build_log: str, name: str) -> float | None:
    """Return a step's time from nublado-build's progress (``  NAME  12.3 s``)."""
    for line in build_log.splitlines():
        parts = line.strip().rsplit(None, 2)
        if len(parts) == 3 and parts[0] == name and parts[2] == "s":
            try:
                return float(parts[1])
            except ValueError:
                continue
    return None


def make_payload(tmp: Path, name: str, requirements: str,
                 installer: str = "pip") -> Path:
    path = tmp / name
    path.mkdir()
    (path / "requirements.txt").write_text(requirements)
    (path / "payload.yaml").write_text(
        f"name: {name}\ninstall:\n  - pip: {{requirements: requirements.txt, "
        f"installer: {installer}}}\nkernel: {{name: {name}, display_name: {name}}}\n")
    return path


def pip_copy_of_scipy(tmp: Path) -> Path:
    """Return a copy of scipy-lab whose pip step installs with pip, not uv."""
    path = tmp / "scipy-lab-pip"
    shutil.copytree(SCIPY, path)
    yaml_path = path / "payload.yaml"
    text = yaml_path.read_text()
    assert "      prefix: /opt/payload/venv\n" in text
    yaml_path.write_text(text.replace("      prefix: /opt/payload/venv\n",
                                      "      prefix: /opt/payload/venv\n"
                                      "      installer: pip\n"))
    return path


# --- the measurements ---------------------------------------------------------

def bench_cold(tmp: Path, rounds: int) -> dict[str, Any]:
    ctx = baseline_context(tmp)
    pip_payload = pip_copy_of_scipy(tmp)
    steps: dict[str, list[float | None]] = {"install": [], "guard": []}

    def nublado_cold() -> float:
        seconds, build_log = nublado_build(SCIPY, NB_TAG, "--no-cache")
        steps["install"].append(step_seconds(build_log, "install[0].pip"))
        steps["guard"].append(step_seconds(build_log, "isolation guard"))
        return seconds

    kinds: dict[str, Callable[[], float]] = {
        "nublado": nublado_cold,
        "baseline": lambda: baseline_build(ctx, "--no-cache"),
        "pip": lambda: nublado_build(pip_payload, PIP_TAG, "--no-cache")[0],
    }
    order = list(kinds)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for index in range(rounds):
        for kind in order if index % 2 == 0 else order[::-1]:
            prune_cache_mounts()
            seconds: float = kinds[kind]()
            times[kind].append(seconds)
            log(f"cold {kind}: {seconds:.1f} s")
    nb, base, pip = (statistics.median(times[k])
                     for k in ("nublado", "baseline", "pip"))
    # "nublado" is the default path (uv since issue 13); "pip" the same
    # payload with installer: pip, against the same hand-written pip build.
    return {"times": times, "nublado_steps": steps,
            "nublado_s": nb, "baseline_s": base, "pip_s": pip,
            "ratio": nb / base, "pip_ratio": pip / base}


def bench_noop(tmp: Path, reps: int) -> dict[str, Any]:
    ctx = tmp / "baseline-context"
    times: dict[str, list[float]] = {"nublado": [], "baseline": []}
    for index in range(reps):
        pair: list[tuple[str, Callable[[], float]]] = [
            ("nublado", lambda: nublado_build(SCIPY, NB_TAG)[0]),
            ("baseline", lambda: baseline_build(ctx))]
        for kind, func in pair if index % 2 == 0 else pair[::-1]:
            times[kind].append(func())
    nb, base = statistics.median(times["nublado"]), statistics.median(times["baseline"])
    log(f"no-op: nublado {nb:.2f} s, baseline {base:.2f} s")
    return {"times": times, "nublado_s": nb, "baseline_s": base, "ratio": nb / base}


def bench_add_package(tmp: Path) -> dict[str, Any]:
    payload = tmp / "scipy-lab-plus-one"
    shutil.copytree(SCIPY, payload)
    with (payload / "requirements.txt").open("a") as f:
        f.write(f"{ADDED_PACKAGE}\n")
    # Warm: the cold rounds emptied the cache mounts before each build, so
    # the default installer's cache holds what the last round's installer
    # left. One more build of scipy-lab (its layers from scratch, its
    # packages from the caches it fills) makes this the warm case.
    warmup, _ = nublado_build(SCIPY, NB_TAG, "--no-cache")
    log(f"add one package: warm-up build of scipy-lab {warmup:.1f} s")
    seconds, build_log = nublado_build(payload, ADD_TAG)
    pip_step = step_seconds(build_log, "install[0].pip")
    base_layers, new_layers = layers(BASE), layers(ADD_TAG)
    reused = sum(1 for a, b in zip(base_layers, new_layers, strict=False) if a == b)
    previous = layers(NB_TAG)
    log(f"add one package: {seconds:.1f} s (pip step {pip_step} s), "
        f"{reused}/{len(base_layers)} base layers reused")
    return {"seconds": seconds, "pip_step_s": pip_step,
            "ratio_to_pip_step": seconds / pip_step if pip_step else None,
            "base_layers": len(base_layers), "base_layers_reused": reused,
            "payload_layers_changed": sum(1 for a, b in zip(previous, new_layers,
                                                             strict=False) if a != b)}


def bench_sharing(tmp: Path) -> dict[str, Any]:
    images = [NB_TAG]
    for name, reqs in EXTRA_PAYLOADS.items():
        tag = f"{PREFIX}/{name}:latest"
        nublado_build(make_payload(tmp, name, reqs), tag)
        images.append(tag)
    base_layers = layers(BASE)
    sharing = {image: layers(image)[: len(base_layers)] == base_layers
               for image in images}
    base_size = size(BASE)
    sizes = {image: size(image) for image in images}
    # Layers above the base are each payload's own; the base's are shared.
    unique = base_size + sum(s - base_size for s in sizes.values())
    separate = sum(sizes.values())
    log(f"sharing: {sharing}; unique {unique / MB:.0f} MB vs separate "
        f"{separate / MB:.0f} MB")
    return {"images": images, "all_share_base": all(sharing.values()),
            "base_layers": len(base_layers), "sizes_mb": {k: v / MB for k, v in
                                                          sizes.items()},
            "unique_disk_mb": unique / MB, "separate_sum_mb": separate / MB,
            "ratio": unique / separate}


def bench_sizes(python_image: str, images: list[str]) -> dict[str, Any]:
    base_size = size(BASE)
    result: dict[str, Any] = {"python_image": python_image,
                              "python_image_mb": size(python_image) / MB,
                              "base_mb": base_size / MB}
    shares = layers(BASE)[: len(layers(python_image))] == layers(python_image)
    result["base_is_on_python_image"] = shares
    result["lab_over_python_mb"] = (base_size - size(python_image)) / MB
    result["payload_over_base_mb"] = {i: (size(i) - base_size) / MB for i in images}
    result["baseline_over_base_mb"] = (size(BASELINE_TAG) - base_size) / MB
    return result


def bench_profiles(python_image: str) -> dict[str, Any]:
    """Each base profile's size over the python image (JupyterHub 6 locks).

    The run's base is one profile (its label says which); every other
    profile is built here on the same python image, with the same options.
    """
    base_profile = inspect(BASE)["Config"]["Labels"][PROFILE_LABEL]
    python_mb = size(python_image) / MB
    out: dict[str, Any] = {}
    for profile in profile_names():
        tag, seconds = BASE, None
        if profile != base_profile:
            tag = f"{PREFIX}/base:{profile}"
            seconds, _ = timed(nublado("base", "--profile", profile, "--tag", tag,
                                       "--python-image", python_image,
                                       "--ca-bundle", str(CA)))
        lock = parse_lock((profiles_dir() / lock_name(profile, 6)).read_text())
        out[profile] = {"image": tag, "build_s": seconds, "packages": len(lock),
                        "base_mb": size(tag) / MB,
                        "over_python_mb": size(tag) / MB - python_mb}
        log(f"profile {profile}: {len(lock)} packages, "
            f"{out[profile]['over_python_mb']:.0f} MB over the python image")
    return out


def bench_kernel(reps: int) -> dict[str, Any]:
    name = f"nb-bench-kernel-{uuid.uuid4().hex[:8]}"
    labels = inspect(NB_TAG)["Config"]["Labels"]
    kernel, python = labels["io.nublado.payload.kernels"].split(",")[0], \
        labels["io.nublado.payload.python"]
    docker("run", "-d", "--name", name, "-e", "HOME=/tmp/home", NB_TAG,
           "sleep", "infinity")
    try:
        proc = run(["docker", "exec", "-i", name, LAB_PYTHON, "-", kernel, python,
                    str(reps)], input_text=_KERNEL_PROBE)
    finally:
        docker("rm", "-f", name, check=False)
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    wrapper, direct = statistics.median(times["wrapper"]), \
        statistics.median(times["direct"])
    log(f"kernel start: wrapper {wrapper:.2f} s, direct {direct:.2f} s")
    return {"reps": reps, "times": times, "wrapper_s": wrapper, "direct_s": direct,
            "ratio": wrapper / direct}


def bench_lab_ready(reps: int) -> dict[str, Any]:
    times = []
    for _ in range(reps):
        name = f"nb-bench-lab-{uuid.uuid4().hex[:8]}"
        start = time.monotonic()
        docker("run", "-d", "--name", name, "-p", "127.0.0.1::8888",
               "-e", f"JUPYTER_TOKEN={uuid.uuid4().hex}", NB_TAG)
        try:
            port = docker("port", name, "8888/tcp").stdout.split()[0].rsplit(":", 1)[1]
            deadline = start + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api",
                                                timeout=5) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("lab did not answer on /api in 120 s")
                time.sleep(0.1)
            times.append(time.monotonic() - start)
        finally:
            docker("rm", "-f", name, check=False)
    median = statistics.median(times)
    log(f"lab ready: {median:.2f} s")
    return {"times": times, "median_s": median}


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "docker_server": docker("version", "--format",
                                "{{.Server.Version}}").stdout.strip(),
        "build_client": find_build_client().describe(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def goals(r: dict[str, Any]) -> dict[str, bool]:
    return {
        "cold build, default path (uv) / hand pip Dockerfile <= 0.75":
            r["cold"]["ratio"] <= 0.75,
        "cold build, installer pip / hand pip Dockerfile <= 1.05":
            r["cold"]["pip_ratio"] <= 1.05,
        "no-op rebuild <= 2 s": r["noop"]["nublado_s"] <= 2.0,
        "rebuild after adding one package <= 3 s (warm)":
            r["add_package"]["seconds"] <= 3.0,
        "add one package reuses all base layers":
            r["add_package"]["base_layers_reused"] == r["add_package"]["base_layers"],
        "payloads share every base layer": r["sharing"]["all_share_base"],
        "JupyterLab layer < 300 MB": r["sizes"]["lab_over_python_mb"] < 300,
        "kernel start ratio <= 1.1": r["kernel"]["ratio"] <= 1.1,
    }


def table(r: dict[str, Any]) -> str:
    c, n, a, s, z, k, lab = (r[x] for x in ("cold", "noop", "add_package", "sharing",
                                            "sizes", "kernel", "lab"))
    rows = [
        ("cold build scipy-lab: nublado-build (default, uv) / hand pip Dockerfile",
         f"{c['nublado_s']:.1f} s / {c['baseline_s']:.1f} s", f"{c['ratio']:.3f}",
         "<= 0.75"),
        ("cold build scipy-lab: nublado-build installer pip / hand pip Dockerfile",
         f"{c['pip_s']:.1f} s / {c['baseline_s']:.1f} s", f"{c['pip_ratio']:.3f}",
         "<= 1.05"),
        ("  nublado-build (default) steps: install / isolation guard (own stage)",
         " / ".join(f"{statistics.median(v):.1f} s" if all(v) else "-"
                    for v in c["nublado_steps"].values()), "", ""),
        ("no-op rebuild: nublado-build / hand Dockerfile",
         f"{n['nublado_s']:.2f} s / {n['baseline_s']:.2f} s", f"{n['ratio']:.2f}",
         "~2 s"),
        (f"rebuild after adding {ADDED_PACKAGE} (warm): total / install step",
         f"{a['seconds']:.1f} s / {a['pip_step_s']} s",
         f"{a['ratio_to_pip_step']:.2f}" if a["ratio_to_pip_step"] else "-",
         "<= 3 s total"),
        ("  base layers reused", f"{a['base_layers_reused']}/{a['base_layers']}", "",
         "all"),
        (f"layer sharing, {len(s['images'])} payloads: all base layers shared",
         str(s["all_share_base"]), "", "yes"),
        ("  disk: unique layers / sum of image sizes",
         f"{s['unique_disk_mb']:.0f} MB / {s['separate_sum_mb']:.0f} MB",
         f"{s['ratio']:.2f}", ""),
        ("JupyterLab layer over python image", f"{z['lab_over_python_mb']:.0f} MB",
         "", "< 300 MB"),
        *((f"  base profile {name} ({p['packages']} packages) over python image",
           f"{p['over_python_mb']:.0f} MB", "", "")
          for name, p in r["profiles"].items()),
        *((f"  payload {i.split('/')[-1]} over base", f"{mb:.0f} MB", "", "")
          for i, mb in z["payload_over_base_mb"].items()),
        ("  hand Dockerfile image over base", f"{z['baseline_over_base_mb']:.0f} MB",
         "", ""),
        (f"kernel start (median of {k['reps']}): wrapper / direct",
         f"{k['wrapper_s']:.2f} s / {k['direct_s']:.2f} s", f"{k['ratio']:.3f}",
         "<= 1.1"),
        (f"lab ready after docker run (median of {len(lab['times'])})",
         f"{lab['median_s']:.2f} s", "", ""),
    ]
    lines = ["| measurement | figures | ratio | goal |", "|---|---|---|---|"]
    lines += [f"| {a_} | {b_} | {c_} | {d_} |" for a_, b_, c_, d_ in rows]
    lines += ["", "| goal | met |", "|---|---|"]
    lines += [f"| {g} | {'yes' if ok else 'NO'} |" for g, ok in r["goals"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="cold-build rounds (each builds all three kinds)")
    parser.add_argument("--kernel-reps", type=int, default=20)
    parser.add_argument("--no-build-base", dest="build_base", action="store_false",
                        help="use --base as it is instead of building the base "
                        "from this checkout first")
    parser.add_argument("--base", default="nublado-jupyterlab-base:latest",
                        help="the JupyterLab base to build on")
    parser.add_argument("--python-image",
                        default="nublado-build/python:3.13-slim-trixie",
                        help="the python image the base was built on")
    parser.add_argument("--hub-reps", type=int, default=3,
                        help="spawns per mode through a real JupyterHub "
                        "(benchmarks/hub.py); 0 skips them")
    parser.add_argument("--output", type=Path,
                        default=HERE / "results" / "latest.json")
    args = parser.parse_args()
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine()}
    if args.build_base:
        # The base from this checkout (payload steps run its build scripts).
        seconds, _ = timed(nublado("base", "--tag", BASE, "--python-image",
                                   args.python_image, "--ca-bundle", str(CA)))
        results["base_build_s"] = seconds
        log(f"base built from this checkout in {seconds:.0f} s")
    else:
        docker("tag", args.base, BASE)  # pin: other builds may retag the base
    results.update(base_image=BASE if args.build_base else args.base,
                   base_id=inspect(BASE)["Id"])
    log(f"machine: {results['machine']}")
    try:
        with tempfile.TemporaryDirectory(prefix="nublado-bench-") as tmp_name:
            tmp = Path(tmp_name)
            results["cold"] = bench_cold(tmp, args.rounds)
            results["noop"] = bench_noop(tmp, 3)
            results["add_package"] = bench_add_package(tmp)
            results["sharing"] = bench_sharing(tmp)
            results["sizes"] = bench_sizes(args.python_image,
                                           [NB_TAG, PIP_TAG,
                                            *results["sharing"]["images"][1:]])
            results["profiles"] = bench_profiles(args.python_image)
            results["kernel"] = bench_kernel(args.kernel_reps)
            results["lab"] = bench_lab_ready(3)
            if args.hub_reps:
                from benchmarks.hub import bench_hub

                results["hub"] = bench_hub(NB_TAG, args.hub_reps)
    finally:
        for image in [BASELINE_TAG, NB_TAG, PIP_TAG, ADD_TAG, BASE,
                      *(f"{PREFIX}/base:{p}" for p in profile_names()),
                      *(f"{PREFIX}/{n}:latest" for n in EXTRA_PAYLOADS)]:
            docker("rmi", image, check=False)
    results["goals"] = goals(results)
    results["total_seconds"] = time.monotonic() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    if "hub" in results:
        from benchmarks.hub import table as hub_table

        print("\n" + hub_table(results["hub"]))
    print(f"\n{len(results['goals'])} goals, "
          f"{sum(results['goals'].values())} met; total "
          f"{results['total_seconds'] / 60:.1f} min; JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
