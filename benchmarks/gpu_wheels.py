"""The wheels ``benchmarks/gpu_checks.py`` needs on a GPU machine that has no network, in ``.whl/``.

That machine has torch, transformers 5.17, accelerate, peft, safetensors, tokenizers,
huggingface_hub, psutil, numpy, rich and pyyaml, and no package index. The checks need
the transformers this project is tested with (5.24.0), what ``evaluators`` imports beyond
that (jsonschema, through the task registry), bitsandbytes for 4- and 8-bit weights, hqq
for quantized KV caches, and DeepSpeed for the ZeRO-2 step. Everything must travel inside
the working tree (64 MiB in all), so bitsandbytes keeps only its CPU and CUDA 13 libraries
(the machine's torch is built for CUDA 13.0): the full wheel is 43 MB, mostly kernels for
CUDA 11.8-12.8 and ROCm. DeepSpeed and hqq are published as source only and are built here
as pure-Python wheels (no compiled ops: DeepSpeed's JIT ops need none for ZeRO-2 with
torch's AdamW). The folder ignores itself (``.whl/.gitignore``), so ``git status`` stays
clean and a ``run`` must name it in ``carry``.

    python benchmarks/gpu_wheels.py [--dest .whl] [--no-deepspeed] [--full-bitsandbytes]
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: binary wheels for CPython 3.12 on x86-64 Linux, or pure-Python ones
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
    "any",
]
#: the evaluate engine at the tested transformers (regex: transformers checks its version on import)
CORE = [
    "transformers==5.24.0",
    "regex==2026.11.19",
    "peft==0.21.2",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "attrs==26.1.0",
    "typing-extensions==4.16.0",
    "bitsandbytes==0.50.2",
    "termcolor==3.3.0",
    "einops==0.8.2",
]
#: DeepSpeed's own requirements (pydantic for its config)
DEEPSPEED_DEPS = [
    "hjson==3.1.0",
    "msgpack==1.2.4",
    "ninja==1.13.2",
    "py-cpuinfo==9.0.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
]
#: published as source distributions only: built here without compiled extensions
BUILT = {"hqq": "hqq==0.2.8.post1", "deepspeed": "deepspeed==0.19.8"}
#: the native libraries of bitsandbytes kept: CPU, and the CUDA 13 builds torch 2.11+cu130 loads
BNB_KEEP = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so", "libbitsandbytes_cuda132.so")


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)


def download(dest: Path, requirements: list[str]) -> None:
    """Wheels for the GPU machine's interpreter (CPython 3.12), whatever interpreter runs this."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip(
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        *platforms,
        "-d",
        str(dest),
        *requirements,
    )


def build(dest: Path, requirement: str) -> None:
    """A pure-Python wheel from a source distribution, against this environment's torch (no isolation)."""
    env = {**os.environ, "DS_BUILD_OPS": "0"}
    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dest), requirement, env=env)


def record_line(name: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def trim_bitsandbytes(wheel: Path) -> None:
    """Rewrite the bitsandbytes wheel without the native libraries the GPU machine never loads.

    The RECORD is regenerated, so the trimmed wheel installs like the original one.
    """

    def kept(name: str) -> bool:
        return not name.startswith("bitsandbytes/libbitsandbytes_") or Path(name).name in BNB_KEEP

    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist() if kept(info.filename)]
    record_name = next(info.filename for info, _ in entries if info.filename.endswith(".dist-info/RECORD"))
    rows = [record_line(info.filename, data) for info, data in entries if info.filename != record_name]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([*rows, [record_name, "", ""]])
    with tempfile.NamedTemporaryFile(dir=wheel.parent, suffix=".part", delete=False) as handle:
        partial = Path(handle.name)
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            target.writestr(info, text.getvalue().encode() if info.filename == record_name else data)
    partial.replace(wheel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=Path(".whl"))
    parser.add_argument("--no-deepspeed", action="store_true", help="leave out section 5's DeepSpeed")
    parser.add_argument("--full-bitsandbytes", action="store_true", help="keep every native library (43 MB)")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    (args.dest / ".gitignore").write_text("*\n")
    download(args.dest, CORE + ([] if args.no_deepspeed else DEEPSPEED_DEPS))
    build(args.dest, BUILT["hqq"])
    if not args.no_deepspeed:
        build(args.dest, BUILT["deepspeed"])
    if not args.full_bitsandbytes:
        for wheel in args.dest.glob("bitsandbytes-*.whl"):
            trim_bitsandbytes(wheel)
    wheels = sorted(args.dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:8.2f} MiB  {wheel.name}")
    print(f"{total / 2**20:8.2f} MiB  in {len(wheels)} wheels")


if __name__ == "__main__":
    main()
