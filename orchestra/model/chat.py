"""Qwen2.5-style chat format with tools: Jinja template, Python renderer and masked encoder.

Turns look like `<|im_start|>role\\n...<|im_end|>\\n`. With tools, the system turn lists each tool
schema as JSON inside `<tools></tools>`; the assistant calls a tool with
`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`; tool results come back in one user
turn of `<tool_response>\\n...\\n</tool_response>` blocks.

`render_chat` produces exactly the text that `tokenizer.apply_chat_template(..., tools=tools,
tokenize=False)` produces with `CHAT_TEMPLATE` installed; both are built from the same rules, and
`encode_chat` tokenises the renderer's segments one by one so it knows which tokens the policy wrote.

Messages are OpenAI-style dicts: {"role": "system"|"user"|"assistant"|"tool", "content": str,
"tool_calls": [{"function": {"name": str, "arguments": dict | str}}]}. String arguments are inserted
verbatim (they are taken to be JSON already); dict arguments are serialised with json.dumps.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
SPECIAL_TOKENS = (
    END_OF_TEXT, IM_START, IM_END, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE,
)

DEFAULT_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOLS_PREAMBLE = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}'
    "\n</tool_call>"
)

# The same rules as `chat_segments`, in Jinja; the long fixed strings are shared with it as literals.
# transformers' `tojson` filter is json.dumps(ensure_ascii=False), which the renderer uses too.
CHAT_TEMPLATE = (
    "{%- set default_system = " + json.dumps(DEFAULT_SYSTEM_PROMPT) + " %}"
    "{%- set has_system = messages and messages[0].role == 'system' %}"
    "{%- set system_text = messages[0].content if has_system else default_system %}"
    "{{- '<|im_start|>system\\n' + system_text }}"
    "{%- if tools %}"
    "{{- " + json.dumps(TOOLS_PREAMBLE) + " }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- " + json.dumps(TOOLS_POSTAMBLE) + " }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}"
    "{#- already rendered above #}"
    "{%- elif message.role in ['user', 'system'] %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.tool_calls %}"
    "{%- if message.content %}{{- message.content + '\\n' }}{%- endif %}"
    "{%- for call in message.tool_calls %}"
    "{%- set function = call.function if call.function is defined else call %}"
    "{%- if not loop.first %}{{- '\\n' }}{%- endif %}"
    "{{- '<tool_call>\\n{\"name\": \"' + function.name + '\", \"arguments\": ' }}"
    "{%- if function.arguments is string %}{{- function.arguments }}"
    "{%- else %}{{- function.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{%- else %}"
    "{{- message.content }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or loop.previtem.role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or loop.nextitem.role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}"
    "{{- raise_exception('unknown message role: ' + message.role) }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class ChatFormatError(ValueError):
    """A conversation that the chat format cannot represent."""


def _text(message: dict[str, Any], index: int) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        raise ChatFormatError(f"message {index} ({message.get('role')!r}) needs string content, got {content!r}")
    return content


def _tool_call_text(call: dict[str, Any], index: int) -> str:
    function = call.get("function", call)
    if "name" not in function or "arguments" not in function:
        raise ChatFormatError(f"message {index}: tool call {call!r} needs a name and arguments")
    arguments = function["arguments"]
    arguments_text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f'{TOOL_CALL_OPEN}\n{{"name": "{function["name"]}", "arguments": {arguments_text}}}\n{TOOL_CALL_CLOSE}'


def assistant_body(message: dict[str, Any], index: int = 0) -> str:
    """What the policy writes for an assistant message, without the closing <|im_end|>."""
    calls = message.get("tool_calls")
    if not calls:
        return _text(message, index)
    content = message.get("content") or ""
    calls_text = "\n".join(_tool_call_text(call, index) for call in calls)
    return f"{content}\n{calls_text}" if content else calls_text


def chat_segments(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, written_by_policy) pieces, in order."""
    has_system = bool(messages) and messages[0].get("role") == "system"
    system_text = _text(messages[0], 0) if has_system else DEFAULT_SYSTEM_PROMPT
    header = f"{IM_START}system\n{system_text}"
    if tools:
        header += TOOLS_PREAMBLE
        header += "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
        header += TOOLS_POSTAMBLE
    segments: list[tuple[str, bool]] = [(header + f"{IM_END}\n", False)]

    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "system" and index == 0:
            continue
        if role in ("user", "system"):
            segments.append((f"{IM_START}{role}\n{_text(message, index)}{IM_END}\n", False))
        elif role == "assistant":
            segments.append((f"{IM_START}assistant\n", False))
            segments.append((assistant_body(message, index) + IM_END, True))
            segments.append(("\n", False))
        elif role == "tool":
            opens = index == 0 or messages[index - 1].get("role") != "tool"
            closes = index == len(messages) - 1 or messages[index + 1].get("role") != "tool"
            text = f"\n{TOOL_RESPONSE_OPEN}\n{_text(message, index)}\n{TOOL_RESPONSE_CLOSE}"
            segments.append(((f"{IM_START}user" if opens else "") + text + (f"{IM_END}\n" if closes else ""), False))
        else:
            raise ChatFormatError(f"message {index} has unknown role {role!r}")
    if add_generation_prompt:
        segments.append((f"{IM_START}assistant\n", False))
    return segments


def render_chat(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """The same text as `tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)` under CHAT_TEMPLATE."""
    return "".join(text for text, _ in chat_segments(messages, tools, add_generation_prompt))


def tool_responses_text(tool_contents: Sequence[str], assistant_turn_closed: bool) -> str:
    """Text to append after a sampled assistant turn to deliver tool results and open the next
    assistant turn. `assistant_turn_closed` says whether the sample already ended with <|im_end|>
    (sampling may stop right after </tool_call> instead)."""
    if not tool_contents:
        raise ChatFormatError("tool_responses_text needs at least one tool response")
    blocks = "".join(f"\n{TOOL_RESPONSE_OPEN}\n{content}\n{TOOL_RESPONSE_CLOSE}" for content in tool_contents)
    closing = "\n" if assistant_turn_closed else f"{IM_END}\n"
    return f"{closing}{IM_START}user{blocks}{IM_END}\n{IM_START}assistant\n"


@dataclasses.dataclass(frozen=True)
class EncodedChat:
    token_ids: np.ndarray  # [T] int32
    policy_mask: np.ndarray  # [T] int32; 1 on tokens the policy wrote (assistant bodies and their <|im_end|>)


def encode_chat(
    tokenizer,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> EncodedChat:
    """Tokenise the conversation segment by segment; segment borders fall on special tokens or
    newlines, so for Qwen tokenizers this equals tokenising the whole rendered text."""
    ids: list[int] = []
    mask: list[int] = []
    for text, by_policy in chat_segments(messages, tools, add_generation_prompt):
        piece = tokenizer.encode(text, add_special_tokens=False)
        ids.extend(piece)
        mask.extend([int(by_policy)] * len(piece))
    return EncodedChat(np.asarray(ids, np.int32), np.asarray(mask, np.int32))


def install_chat_template(tokenizer) -> None:
    """Use CHAT_TEMPLATE for `apply_chat_template`; the tokenizer must know the Qwen special tokens."""
    unknown = [t for t in (IM_START, IM_END) if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
    if unknown:
        raise ChatFormatError(f"tokenizer has no tokens for {unknown}; the chat format needs them")
    tokenizer.chat_template = CHAT_TEMPLATE


def load_tokenizer(path: str | Path):
    """The tokenizer of a local checkpoint directory, with CHAT_TEMPLATE installed.

    With a `tokenizer.json` the fast tokenizer is loaded from it as saved: `AutoTokenizer` would pick
    a class from config.json's model_type (e.g. Qwen2Tokenizer), whose own pre-tokenisation differs
    from a tokenizer trained here."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {str(path)!r} does not exist")
    if (path / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    install_chat_template(tokenizer)
    return tokenizer


def stop_sequences(tokenizer) -> list[list[int]]:
    """Token-id sequences that end a sampled turn: <|im_end|>, the EOS token(s), and </tool_call>."""
    sequences = [tokenizer.encode(IM_END, add_special_tokens=False)]
    eos = tokenizer.eos_token_id
    for eos_id in eos if isinstance(eos, list) else [eos]:
        if eos_id is not None and [eos_id] not in sequences:
            sequences.append([eos_id])
    sequences.append(tokenizer.encode(TOOL_CALL_CLOSE, add_special_tokens=False))
    return sequences
