"""Offline fixtures for the model tests: a tiny byte-level BPE tokenizer with the Qwen special tokens
and our chat template, and tiny random transformers (torch) checkpoints saved with save_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from orchestra.model.chat import END_OF_TEXT, IM_END, SPECIAL_TOKENS, install_chat_template

_SENTENCES = [
    "The weather in Paris is sunny today and tomorrow.",
    "Search for flights from Berlin to Rome on Monday.",
    '{"name": "search_flights", "arguments": {"origin": "BER", "destination": "FCO"}}',
    "You are a helpful assistant that calls tools.",
    "The hotel costs 120 euros per night, breakfast included.",
]


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=list(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=IM_END, pad_token=END_OF_TEXT)
    install_chat_template(fast)
    return fast


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


VOCAB = 320  # the tiny tokenizer's size
_COMMON = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
)
HF_MODELS = {
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**_COMMON, tie_word_embeddings=True, rope_theta=10000.0)),
    # head_dim 32 differs from hidden/heads = 16, as in real Qwen3 models.
    "qwen3": lambda: Qwen3ForCausalLM(Qwen3Config(**_COMMON, head_dim=32, tie_word_embeddings=False)),
    "llama3": lambda: LlamaForCausalLM(LlamaConfig(
        **_COMMON, tie_word_embeddings=False,
        # original context of 32 so the llama3 frequency scaling changes the test positions
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=32),
    )),
}


def random_hf_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """Weights large enough that logits are peaked (greedy choices are not near ties)."""
    torch.manual_seed(seed)
    model = HF_MODELS[kind]().eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
            else:
                parameter.normal_(0.0, 0.15)
    return model


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory, tiny_tokenizer) -> dict[str, tuple[str, torch.nn.Module]]:
    """kind -> (checkpoint directory, the torch model saved there)."""
    out = {}
    for kind in HF_MODELS:
        model = random_hf_model(kind)
        path = tmp_path_factory.mktemp(kind)
        model.save_pretrained(path)
        tiny_tokenizer.save_pretrained(path)
        out[kind] = (str(path), model)
    return out


def torch_logits(model: torch.nn.Module, tokens) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()
