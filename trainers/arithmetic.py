"""A small arithmetic dataset for the examples and tests, generated deterministically.

SFT rows teach a format the base model does not use on its own (the answer alone, in
``\\boxed{}``), so a few dozen steps show a measurable change in the held-out format rate;
GRPO rows ask for that format, so the ``format`` and ``boxed_match`` rewards have something
to find. The same count and seed always write the same file::

    python -m trainers.arithmetic examples/data/arithmetic-sft.jsonl --kind sft --count 400 --system "Be brief."
    python -m trainers.arithmetic examples/data/arithmetic-grpo.jsonl --kind grpo --count 200 --seed 1 \\
        --system "Be brief." --shots 1 --largest 9
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

GRPO_INSTRUCTION = "Put the final answer in \\boxed{}."


def _problem(rng: random.Random, largest: int) -> tuple[str, int]:
    a, b = rng.randint(1, largest), rng.randint(1, largest)
    op = rng.choice("+-")
    return f"What is {a} {op} {b}?", a + b if op == "+" else a - b


def arithmetic_rows(
    count: int, seed: int = 0, kind: str = "sft", largest: int = 50, system: str | None = None, shots: int = 0
) -> list[dict]:
    """``count`` additions and subtractions of numbers up to ``largest``, as JSONL rows.

    With ``system``, prompts are conversations that open with that system turn (a short one
    replaces the long default some chat templates insert, which keeps CPU steps short).
    ``shots`` solved problems (user turn, assistant answer) precede the question: with one,
    SmolLM2 answers in ``\\boxed{}`` about half the time, so GRPO's sampled groups differ in
    reward and there is a signal to learn from (with none, it never does).
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        suffix = "" if kind == "sft" else f" {GRPO_INSTRUCTION}"
        question, value = _problem(rng, largest)
        prompt: str | list[dict] = question + suffix
        if system is not None or shots:
            turns = [{"role": "system", "content": system}] if system is not None else []
            for _ in range(shots):
                solved, result = _problem(rng, largest)
                turns += [
                    {"role": "user", "content": solved + suffix},
                    {"role": "assistant", "content": f"\\boxed{{{result}}}"},
                ]
            prompt = [*turns, {"role": "user", "content": question + suffix}]
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
    path: str | Path,
    count: int = 400,
    seed: int = 0,
    kind: str = "sft",
    system: str | None = None,
    shots: int = 0,
    largest: int = 50,
) -> Path:
    """Generate and write the dataset; the same arguments always give the same file."""
    return write_jsonl(path, arithmetic_rows(count, seed, kind, largest, system, shots))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="JSONL file to write")
    parser.add_argument("--kind", choices=("sft", "grpo"), default="sft")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--system", help="open every prompt with this system turn")
    parser.add_argument("--shots", type=int, default=0, help="solved problems shown before each question")
    parser.add_argument("--largest", type=int, default=50, help="the largest operand")
    args = parser.parse_args(argv)
    path = write_dataset(args.output, args.count, args.seed, args.kind, args.system, args.shots, args.largest)
    print(f"wrote {args.count} {args.kind} rows to {path}")


if __name__ == "__main__":
    main()
