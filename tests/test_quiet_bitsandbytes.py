"""bitsandbytes' optional-kernel notice is dropped at its logger; its other messages still show.

On a CPU with AVX512-BF16, importing bitsandbytes tries to fetch a fused NF4 kernel from the
hub and logs "Failed to load CPU gemm_4bit_forward from kernels-community ..." when it cannot.
The check runs in a fresh process (bitsandbytes logs it once, at import): a real QLoRA-style
4-bit load of a tiny model on CPU; where the CPU lacks AVX512-BF16 (so bitsandbytes skips the
attempt), the process replays bitsandbytes' own call on bitsandbytes' own logger.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys

import trainers  # as a Ray worker does: the package comes first, then PEFT and TRL import bitsandbytes
import peft  # noqa: F401
import torch
from transformers import AutoModelForCausalLM

from bitsandbytes.backends.cpu import ops
from bitsandbytes.functional import has_avx512bf16
from evaluators.loader import bitsandbytes_config

model = AutoModelForCausalLM.from_pretrained(
    sys.argv[1], dtype=torch.float32, quantization_config=bitsandbytes_config(4, torch.float32), device_map={"": "cpu"}
)
print("4-bit layers:", sum(type(m).__name__ == "Linear4bit" for m in model.modules()), flush=True)
if not has_avx512bf16():
    ops.logger.warning(
        "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
        "`pip install kernels` and the kernels >= 0.11.1",
        ModuleNotFoundError("No module named 'kernels'"),
    )
ops.logger.warning("another bitsandbytes warning")
"""


def test_a_4bit_load_on_cpu_prints_no_kernel_notice(tiny_model):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_model)], capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "4-bit layers:" in output and "4-bit layers: 0" not in output
    assert "gemm_4bit_forward" not in output and "kernels-community" not in output
    assert "another bitsandbytes warning" in output  # only that notice is dropped
