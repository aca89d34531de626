"""A tiny Llama with a real, locally trained tokenizer and chat template, for fast tests.

Random weights make nonsense answers, which is fine: what the fast tests check —
compression equivalences, positions, bookkeeping — holds for any weights. Tests that
need a model that actually answers use SmolLM2-135M-Instruct.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from evaluators.tasks.passkey import ANSWER_PREFIX, FILLER, QUESTION

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: a reasoning model's template, as DeepSeek-R1 distills have: the answer starts inside <think>
REASONING_TEMPLATE = CHAT_TEMPLATE.replace("assistant\n{% endif %}", "assistant\n<think>\n{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    corpus = [FILLER, QUESTION, ANSWER_PREFIX, "The pass key is 12345. Remember it.", "user assistant system"]
    corpus += [" ".join(str(i) for i in range(d * 10, d * 10 + 10)) for d in range(10)]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus * 20, trainer)
    from tokenizers import decoders

    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="</s>",
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def build_model(
    vocab_size: int, eos_token_id: int, bos_token_id: int, seed: int = 0, layers: int = 3
) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        eos_token_id=eos_token_id,
        bos_token_id=bos_token_id,
        pad_token_id=eos_token_id,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny(path: Path, chat_template: str | None = CHAT_TEMPLATE, broken: bool = False) -> Path:
    """A complete model folder (config, safetensors, tokenizer) that `from_pretrained` loads.

    ``broken`` zeroes the final norm: every logit is 0, so greedy decoding always picks token 0
    (``<unk>``, a special token) and every answer decodes to an empty string — the way a
    damaged quantized checkpoint fails.
    """
    tokenizer = build_tokenizer(chat_template)
    model = build_model(len(tokenizer), tokenizer.eos_token_id, tokenizer.bos_token_id)
    if broken:
        with torch.no_grad():
            model.model.norm.weight.zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
