"""`make image-test`: builds both image variants here, without a registry, and checks each one.

Run as root on a Debian machine with buildah and debootstrap (the Makefile installs them):

    python deploy/image/image_test.py [--variants full,onnx] [--cache DIR]

Steps, each with a progress line:
1. the local bases (deploy/image/bases.sh): a debootstrap bookworm, this machine's Rust toolchain;
2. each variant built with `buildah bud --isolation chroot --format docker` FROM them;
3. each image started with its own CMD and environment (`buildah run --isolation chroot`), on a
   free port on 127.0.0.1 (INFERD_ADDRESS), and SERVING waited for by running the image's own
   HEALTHCHECK command in it until it exits 0;
4. real requests from this host's client: wine (both), digits and a short smollm2 stream (full);
5. the server's process runs as the image's non-root user, and SIGTERM stops it, exit status 0,
   within the service's grace_s.
Last, each image's size and its seconds to SERVING (JSON in --report, when given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[2]
BUILDAH = ["buildah", "--storage-driver", "vfs"]
#: Seconds a started image has to report SERVING (the full one loads torch and smollm2 on 2 cores).
SERVING_DEADLINE_S = 300.0
WINE = {"alcohol": 13.2, "malic_acid": 1.78, "ash": 2.14, "alcalinity_of_ash": 11.2, "magnesium": 100,
        "total_phenols": 2.65, "flavanoids": 2.76, "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.28,
        "color_intensity": 4.38, "hue": 1.05, "od280_od315": 3.4, "proline": 1050}


def step(message: str) -> None:
    print(f"[image-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def fail(message: str) -> NoReturn:
    print(f"image-test FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, text=True, capture_output=True, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def image_config(image: str) -> dict[str, Any]:
    """The image's Docker config (Cmd, Env, User, WorkingDir, Healthcheck)."""
    done = run([*BUILDAH, "inspect", "--type", "image", image])
    if done.returncode:
        fail(f"buildah inspect {image}: {done.stderr.strip()}")
    return dict(json.loads(done.stdout)["Docker"]["config"])


def image_size(image: str) -> int:
    """Bytes, from buildah's figure ("367 MB", decimal units: its unpacked layers)."""
    done = run([*BUILDAH, "images", "--json", image])
    if done.returncode:
        return -1
    number, unit = str(json.loads(done.stdout)[0]["size"]).split()
    return round(float(number) * {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit])


def build(variant: str, bases: tuple[str, str], log: Path) -> tuple[str, float]:
    image = f"localhost/inferd:{variant}"
    command = [*BUILDAH, "bud", "--isolation", "chroot", "--format", "docker", "--build-arg", f"BASE={bases[0]}",
               "--build-arg", f"RUST={bases[1]}", "--build-arg", f"VARIANT={variant}", "-t", image, str(ROOT)]
    before = builder_containers(bases[1])
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    # buildah 1.28 leaves the working container of a stage only COPY --from reads (the RUST
    # stage): remove what this build left.
    for container in builder_containers(bases[1]) - before:
        run([*BUILDAH, "rm", container])
    if done.returncode:
        fail(f"building {image} failed (exit {done.returncode}); the log's end:\n" + "".join(log.read_text().splitlines(True)[-30:]))
    return image, time.monotonic() - started


def builder_containers(image: str) -> set[str]:
    """The ids of buildah's build containers from ``image``."""
    done = run([*BUILDAH, "containers", "--json"])
    if done.returncode:
        return set()
    return {item["id"] for item in json.loads(done.stdout or "null") or [] if item.get("builder") and item.get("imagename") == image}


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def server_process(runner: subprocess.Popen[str]) -> int | None:
    """The Python process of `inferd serve` (under buildah-chroot-runtime and -exec)."""
    for pid in descendants(runner.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode()).name.startswith("python") and b"serve" in argv and argv[1].endswith(b"/inferd"):
            return pid
    return None


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise ValueError(f"no Uid in /proc/{pid}/status")


class Started:
    """One image running its CMD in a buildah working container."""

    def __init__(self, image: str, log: Path) -> None:
        self.image, self.config = image, image_config(image)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        done = run([*BUILDAH, "from", "--pull-never", image])
        if done.returncode:
            fail(f"buildah from {image}: {done.stderr.strip()}")
        self.container = done.stdout.strip().splitlines()[-1]
        self.log = log.open("w")
        self.runner = subprocess.Popen(self._run(self.config["Cmd"]), stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def _run(self, argv: list[str]) -> list[str]:
        # The image's own user and working directory, and INFERD_ADDRESS on a free port (chroot
        # isolation shares this host's network).
        return [*BUILDAH, "run", "--isolation", "chroot", "--user", self.config.get("User") or "root",
                "--workingdir", self.config.get("WorkingDir") or "/", "--env", f"INFERD_ADDRESS={self.address}",
                "--env", f"INFERD_METRICS_ADDRESS=127.0.0.1:{self.metrics_port}",
                self.container, "--", *argv]

    def healthy(self) -> bool:
        """The image's HEALTHCHECK command, run in the container: True when it exits 0."""
        test = list(self.config["Healthcheck"]["Test"])
        argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
        return run(self._run(argv), timeout=60).returncode == 0

    def wait_serving(self) -> float:
        started = time.monotonic()
        deadline = started + SERVING_DEADLINE_S
        while not self.healthy():
            if self.runner.poll() is not None:
                fail(f"{self.image} exited ({self.runner.returncode}) before SERVING; see {self.log.name}")
            if time.monotonic() > deadline:
                fail(f"{self.image} not SERVING after {SERVING_DEADLINE_S:.0f} s; see {self.log.name}")
            time.sleep(0.5)
        return time.monotonic() - started

    def stop(self, grace_s: float) -> float:
        pid = server_process(self.runner)
        if pid is None:
            fail(f"no `inferd serve` process under buildah run in {self.image}")
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        try:
            code = self.runner.wait(timeout=grace_s + 5)
        except subprocess.TimeoutExpired:
            fail(f"{self.image} still running {grace_s + 5:.0f} s after SIGTERM")
        took = time.monotonic() - started
        if code != 0:
            fail(f"{self.image} exited with status {code} after SIGTERM; see {self.log.name}")
        if took > grace_s:
            fail(f"{self.image} took {took:.1f} s to stop after SIGTERM, over grace_s = {grace_s}")
        return took

    def close(self) -> None:
        if self.runner.poll() is None:
            for pid in reversed(descendants(self.runner.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.runner.kill()
            self.runner.wait()
        self.log.close()
        run([*BUILDAH, "rm", self.container])


def requests(variant: str, address: str) -> list[str]:
    """Real requests from this host's client; returns a line on each answer."""
    import numpy as np

    from inferd import Client

    lines = []
    with Client(address, timeout=120) as client:
        wine = client.infer("wine", [WINE]).output
        if wine[0]["label"] != "class_0":
            fail(f"wine answered {wine}, not class_0")
        lines.append(f"wine: {wine[0]['label']} ({max(wine[0]['probabilities']):.3f})")
        echo = [chunk.output for chunk in client.stream("echo", "one two three") if not chunk.final]
        if "".join(echo).split() != ["one", "two", "three"]:
            fail(f"echo streamed {echo}")
        lines.append(f"echo: {len(echo)} chunks")
        if variant == "full":
            from sklearn.datasets import load_digits

            digits = load_digits()
            images = digits.images[:16].reshape(16, 1, 8, 8).astype(np.float32)
            labels = np.asarray(client.infer("digits", {"input": images}).output["label"])
            right = int((labels == digits.target[:16]).sum())
            if right < 14:
                fail(f"digits: {right}/16 right ({labels.tolist()} for {digits.target[:16].tolist()})")
            lines.append(f"digits: {right}/16 right")
            chunks = list(client.stream("smollm2", "What is the capital of France?", parameters={"max_new_tokens": 12}))
            text = "".join(chunk.output for chunk in chunks if not chunk.final)
            if not chunks[-1].final or len(chunks) < 3 or not text.strip():
                fail(f"smollm2 streamed {len(chunks)} chunks: {text!r}")
            lines.append(f"smollm2: {len(chunks) - 1} tokens streamed: {text.strip()!r}")
    return lines


def check(variant: str, image: str, work: Path) -> dict[str, Any]:
    config = image_config(image)
    user = config.get("User") or ""
    if user in ("", "root", "0"):
        fail(f"{image} runs as root (USER {user!r})")
    step(f"{variant}: starting {image} ({' '.join(config['Cmd'])}, user {user})")
    started = Started(image, work / f"serve-{variant}.log")
    try:
        serving_s = started.wait_serving()
        step(f"{variant}: SERVING after {serving_s:.1f} s (its HEALTHCHECK: {' '.join(config['Healthcheck']['Test'][1:])})")
        for line in requests(variant, started.address):
            step(f"{variant}: {line}")
        pid = server_process(started.runner)
        if pid is None:
            fail(f"no `inferd serve` process in {image}")
        uid = uid_of(pid)
        if uid == 0:
            fail(f"{image}'s server runs as uid 0")
        step(f"{variant}: the server (pid {pid}) runs as uid {uid}")
        grace_s = service_grace(started)
        stopped_s = started.stop(grace_s)
        step(f"{variant}: SIGTERM stopped it in {stopped_s:.1f} s (exit 0; grace_s {grace_s})")
    finally:
        started.close()
    return {"image": image, "size_bytes": image_size(image), "serving_s": round(serving_s, 1),
            "stop_s": round(stopped_s, 2), "uid": uid}


def service_grace(started: Started) -> float:
    config_path = started.config["Cmd"][started.config["Cmd"].index("--config") + 1]
    done = run(started._run(["cat", config_path]))
    return float(tomllib.loads(done.stdout).get("server", {}).get("grace_s", 10.0))


def machine() -> str:
    cpus = os.cpu_count()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return f"{cpus} vCPUs, {model}"


def plot(results: dict[str, Any], path: Path) -> None:
    """Two bars a variant: its size (MB) and its seconds to SERVING."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, (sizes, times) = plt.subplots(1, 2, figsize=(8, 3.2))
    sizes.bar(names, [results[name]["size_bytes"] / 1e6 for name in names], color="#4c72b0")
    sizes.axhline(400, color="#c44e52", linestyle="--", label="goal for onnx: 400 MB")
    sizes.set_ylabel("image size (MB)")
    sizes.set_yscale("log")
    sizes.legend(fontsize=8)
    times.bar(names, [results[name]["serving_s"] for name in names], color="#55a868")
    times.set_ylabel("seconds from start to SERVING")
    figure.suptitle(f"inferd's images (make image-test, {time.strftime('%Y-%m-%d')})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="onnx,full", help="comma-separated: onnx, full")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/inferd-image"), help="the bases' cache")
    parser.add_argument("--report", type=Path, help="write the sizes and times as JSON here")
    args = parser.parse_args()
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (make image-test installs it with apt-get)")
    args.cache.mkdir(parents=True, exist_ok=True)
    step("local bases: debootstrap bookworm (cached) and this machine's Rust toolchain")
    done = run([str(ROOT / "deploy/image/bases.sh"), str(args.cache)])
    if done.returncode:
        fail(f"deploy/image/bases.sh: {done.stderr.strip()}")
    base, rust = done.stdout.split()
    step(f"local bases: {base} ({image_size(base) / 1e6:.0f} MB), {rust}")
    results: dict[str, Any] = {}
    for variant in args.variants.split(","):
        step(f"{variant}: building (log: {args.cache / f'build-{variant}.log'})")
        image, build_s = build(variant, (base, rust), args.cache / f"build-{variant}.log")
        step(f"{variant}: built {image} in {build_s:.0f} s, {image_size(image) / 1e6:.0f} MB")
        results[variant] = {**check(variant, image, args.cache), "build_s": round(build_s)}
    for variant, result in results.items():
        print(f"image-test: {result['image']}: {result['size_bytes'] / 1e6:.0f} MB, SERVING after "
              f"{result['serving_s']} s, stopped by SIGTERM in {result['stop_s']} s, built in {result['build_s']} s")
    if args.report:
        results_doc = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "images": results}
        args.report.write_text(json.dumps(results_doc, indent=2) + "\n")
        plot(results, args.report.with_suffix(".png"))
    print("image-test: passed")


if __name__ == "__main__":
    main()
