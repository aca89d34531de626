"""A small arithmetic dataset for the examples and tests, generated deterministically.

SFT rows teach a format the base model does not use on its own (the answer alone, in
``\\boxed{}``), so a few dozen steps show a measurable change in the held-out format rate;
GRPO rows ask for that format, so the ``format`` and ``boxed_match`` rewards have something
to find. The same count and seed always write the same file::

    python -m trainers.arithmetic examples/data/arithmetic-sft.jsonl --kind sft --count 400 --system "Be brief."
    python -m trainers.arithmetic examples/data/arithmetic-grpo.jsonl --kind grpo --count 200 --seed 1 \\
        --system "Be brief."
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

GRPO_INSTRUCTION = "Put the final answer in \\boxed{}."


def arithmetic_rows(
    count: int, seed: int = 0, kind: str = "sft", largest: int = 50, system: str | None = None
) -> list[dict]:
    """``count`` additions and subtractions of numbers up to ``largest``, as JSONL rows.

    With ``system``, prompts are conversations that open with that system turn (a short one
    replaces the long default some chat templates insert, which keeps CPU steps short).
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(1, largest), rng.randint(1, largest)
        op = rng.choice("+-")
        value = a + b if op == "+" else a - b
        question = f"What is {a} {op} {b}?" if kind == "sft" else f"What is {a} {op} {b}? {GRPO_INSTRUCTION}"
        prompt: str | list[dict] = question
        if system is not None:
            prompt = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        if kind == "sft":
            rows.append({"prompt": prompt, "completion": f"\\boxed{{{value}}}", "answer": str(value)})
        else:
            rows.append({"prompt": prompt, "answer": str(value)})
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` one JSON object per line, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_dataset(
    path: str | Path, count: int = 400, seed: int = 0, kind: str = "sft", system: str | None = None
) -> Path:
    """Generate and write the dataset; the same arguments always give the same file."""
    return write_jsonl(path, arithmetic_rows(count, seed, kind, system=system))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="JSONL file to write")
    parser.add_argument("--kind", choices=("sft", "grpo"), default="sft")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--system", help="open every prompt with this system turn")
    args = parser.parse_args(argv)
    path = write_dataset(args.output, args.count, args.seed, args.kind, args.system)
    print(f"wrote {args.count} {args.kind} rows to {path}")


if __name__ == "__main__":
    main()
