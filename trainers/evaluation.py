"""After training: the adapter answers the held-out prompts and is scored with the same scorers.

Greedy decoding, batched, each rank on its share of the prompts; rank 0 gathers the rows,
writes ``eval_generations.jsonl`` (prompt, output, extracted answer, gold, verdicts) and
reports ``eval_accuracy``, ``eval_format_ok_rate`` and ``eval_empty_rate``. A metric no
row could produce (accuracy without gold answers) is reported missing with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evaluators.health import visible_text
from trainers.answers import gold_from_completion, judge
from trainers.data import Example
from trainers.templates import Renderer

GENERATIONS = "eval_generations.jsonl"
#: ``summarize``'s metrics without their prefix (``eval_``, ``base_eval_``), and which way is better
DIRECTIONS = {"accuracy": "max", "format_ok_rate": "max", "empty_rate": "min", "unfinished_thinking_rate": "min"}
BATCH = 8


def gold_of(example: Example, answer_format: str) -> str | None:
    """The row's ``answer``, else what its reference completion says."""
    return example.answer if example.answer is not None else gold_from_completion(example.completion, answer_format)


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    add_special_tokens: bool,
) -> list[str]:
    """Greedy completions of ``prompts``, left-padded in batches."""
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), BATCH):
            batch = tokenizer(
                list(prompts[start : start + BATCH]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special_tokens,
            ).to(device)
            tokens = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = tokens[:, batch["input_ids"].shape[1] :]
            outputs += [visible_text(tokenizer, row.tolist()) for row in new]
    finally:
        tokenizer.padding_side = side
    return outputs


def evaluate(
    model: PreTrainedModel,
    renderer: Renderer,
    examples: Sequence[Example],
    answer_format: str,
    max_new_tokens: int,
) -> list[dict]:
    """One row per example: the output and how it scores."""
    model.eval()
    prompts = [renderer.prompt_text(e.prompt) for e in examples]
    outputs = generate(model, renderer.tokenizer, prompts, max_new_tokens, add_special_tokens=not renderer.applied)
    rows = []
    for example, prompt, output in zip(examples, prompts, outputs, strict=True):
        gold = gold_of(example, answer_format)
        verdict = judge(output, answer_format, gold, example.constraints, renderer.opens_thinking, example.schema)
        rows.append(
            {
                "line": example.line,
                "prompt": prompt,
                "output": output,
                "answer": verdict.answer,
                "extracted": verdict.extracted,
                "gold": gold,
                "correct": verdict.correct,
                "format_ok": verdict.format_ok,
                "empty": verdict.empty,
                "unfinished_thinking": verdict.unfinished_thinking,
            }
        )
    return rows


def summarize(rows: Sequence[dict], prefix: str = "eval_") -> tuple[dict[str, float], dict[str, str]]:
    """Accuracy, format and empty rates over the rows; missing metrics with their reason."""
    metrics: dict[str, float] = {}
    missing: dict[str, str] = {}
    if not rows:
        return metrics, {f"{prefix}accuracy": "no held-out rows"}
    metrics[f"{prefix}format_ok_rate"] = sum(r["format_ok"] for r in rows) / len(rows)
    metrics[f"{prefix}empty_rate"] = sum(r["empty"] for r in rows) / len(rows)
    metrics[f"{prefix}unfinished_thinking_rate"] = sum(r["unfinished_thinking"] for r in rows) / len(rows)
    graded = [r["correct"] for r in rows if r["correct"] is not None]
    if graded:
        metrics[f"{prefix}accuracy"] = sum(graded) / len(graded)
    else:
        missing[f"{prefix}accuracy"] = "no held-out row has a gold answer (an 'answer' field or one in its completion)"
    return metrics, missing


def write_rows(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
    return path
