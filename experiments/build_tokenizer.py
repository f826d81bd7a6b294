"""Build the copy-friendly tokenizer from an ecosystem, and measure it against byte-level BPE.

    python -m experiments.build_tokenizer out_dir=outputs/tokenizer vocab_size=4096

Writes the tokenizer files (loadable with `AutoTokenizer.from_pretrained(out_dir)`) and
`report.json` with the measured figures:
- copy consistency: for each scalar argument value of each gold call, do its token ids inside the
  call equal its ids where the policy would copy it from (the query, or an earlier step's response)?
- tokens per query, gold call and response, for this tokenizer and for a GPT-2 style byte-level BPE
  trained on the same corpus with the same vocabulary size.

The corpus builder and the measurements live here, not in `orchestra.model`, because they read the
data and environment layers and the model package must not import them.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.data.types import Call
from orchestra.env.codec import format_tool_call
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.tokenizer import CONTROL_TOKENS, TOOL_TAGS, build_tokenizer, save_tokenizer, wrap

# Everyday request phrasing, so that common English words get tokens of their own. Written for this
# project; deliberately free of the shipped tasks' places, dates and ids.
SCAFFOLDING = """\
Hi, I need some help planning a trip. Could you please find me a few options?
I am looking for a place to stay for two nights, close to the city centre if possible.
Can you search for flights from my home airport to the capital next month?
Please book a car that I can pick up at the airport and drop off at the same location.
What are the best things to do there with children? We would like to visit a museum and a park.
First, look up the destination, then use the result to search for hotels near it.
After that, check the details of the cheapest option and tell me the total price.
I want to leave early in the morning and come back late in the evening on the following day.
Find the fastest route with the fewest stops, and show me the available seats.
My wife and I are travelling with our two kids, aged four and seven, and one small dog.
Is breakfast included? Does the room have free cancellation and a good review score?
Sort the results by lowest price, then by distance from the old town.
We arrive on Friday afternoon and check out on Sunday before noon.
Could you also tell me the weather, the local currency and the nearest train station?
I'd like a rental car for a week; an automatic with air conditioning would be great.
Which attractions are open on weekends, and how much do the tickets cost for adults?
Use the id from the previous search to get more information about that place.
Show me the reviews, the photos and the address, and let me know the opening hours.
Search for a round trip in economy class for one adult, returning ten days later.
I'm not sure about the exact dates yet, so please compare prices for the whole month.
Thanks! That sounds perfect. Please go ahead and confirm the reservation for me.
Sorry, I meant the other hotel, the one by the river with the swimming pool.
Get the coordinates of the landmark first, then search for cars available nearby.
The meeting starts at nine in the morning, so I need to land the evening before.
Tell me which option is cheaper overall, including taxes and fees, and why.
Plan a day of sightseeing: a guided tour, lunch at a local restaurant, and a show at night.
Find a hotel for the conference, within walking distance, with parking and a gym.
My flight was cancelled; what are the next available departures to the same city?
Look for a one-way flight, business class, for three passengers, departing this weekend.
Which car rental company has the best rating, and what is the deposit?
Before booking, check whether the price changes if we stay one more night.
Recommend popular tourist spots, and tell me how far each one is from the hotel.
I would prefer a direct flight, but one stop is fine if it saves a lot of money.
Return a short summary with the name, the price and the rating of each result.
The user wants information about the location, the dates and the number of guests.
The function returned an error; try again with a different value for the parameter.
Call the tool with the required arguments, then read its response and answer the question.
"""


def _json_texts(obj: Any) -> list[str]:
    """A JSON value as the texts a policy meets: compact, default separators, and pretty."""
    return [json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
            json.dumps(obj, ensure_ascii=False),
            json.dumps(obj, ensure_ascii=False, indent=2)]


def corpus_from_ecosystem(eco, include_scaffolding: bool = True) -> list[str]:
    """Texts to train the tokenizer on: schemas, responses, gold calls, queries, English phrasing."""
    texts: list[str] = []
    pruned = ResponseView()
    for tool in eco.tools.values():
        texts += _json_texts(tool.to_json())
        for kind in ("full", "compact"):
            texts.append(json.dumps(ToolView(kind).schema(tool), ensure_ascii=False))
        texts.append(f"{tool.name}: {tool.description}")
        texts += [f"{p.name}: {p.description}" for p in tool.parameters]
    calls = [Call(e.function, e.arguments) for e in eco.cache_entries]
    responses = [e.response for e in eco.cache_entries]
    for task in eco.tasks:
        texts.append(task.query)
        for step in task.steps:
            calls.append(step.call)
            responses.append(step.response)
    texts += [format_tool_call(c) for c in calls]
    for r in responses:
        texts += _json_texts(r)
        texts.append(pruned.render(r))
    if include_scaffolding:
        texts += SCAFFOLDING.splitlines()
    return list(dict.fromkeys(texts))  # drop repeats (cache entries repeat task steps), keep order


def byte_level_bpe(corpus_texts: Iterable[str], vocab_size: int):
    """The baseline: GPT-2 style byte-level BPE (spaces attached to the next word) on the same corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(CONTROL_TOKENS + TOOL_TAGS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_texts, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CONTROL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TAGS])
    return wrap(tok)


# ---------------------------------------------------------------------------------------------
# Copy consistency

def _leaves(value: Any, path: tuple = ()) -> Iterable[tuple[tuple, Any]]:
    """(path, scalar) for every string, number and boolean inside an argument value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, path + (i,))
    elif value is not None:
        yield path, value


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


_SENTINEL = "\ue000sentinel\ue000"


def _leaf_span(call: Call, path: tuple, leaf: Any) -> tuple[int, int]:
    """Where the leaf's text sits in `format_tool_call(call)` (inside the quotes for a string).

    The call is rendered again with the leaf replaced by a sentinel: everything before the leaf is
    the same text, so the sentinel's position is the leaf's.
    """
    marked = format_tool_call(Call(call.function, _replace(call.arguments, path, _SENTINEL)))
    start = marked.index(json.dumps(_SENTINEL, ensure_ascii=False))
    text = json.dumps(leaf, ensure_ascii=False)
    if isinstance(leaf, str):
        return start + 1, start + len(text) - 1
    return start, start + len(text)


class _Encoded:
    """A text, its token ids and character offsets, as plain lists (read many times)."""

    def __init__(self, text: str, encoding):
        self.text, self.ids, self.offsets = text, encoding.ids, encoding.offsets
        self.ends = [e for _, e in self.offsets]

    def span_ids(self, start: int, end: int) -> tuple[int, ...] | None:
        """The ids of the tokens exactly covering text[start:end]; None if a token crosses an edge."""
        ids = []
        for i in range(bisect.bisect_right(self.ends, start), len(self.ids)):
            s, e = self.offsets[i]
            if s >= end:
                break
            if s < start or e > end:
                return None
            ids.append(self.ids[i])
        return tuple(ids) or None


def _number_like(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _occurrences(text: str, value_text: str, json_source: bool) -> list[tuple[int, int]]:
    """Where `value_text` stands in `text` as a whole value.

    In a query: not glued to a letter, digit or `_` on either side (`Paris` in `Parisian` is not
    the value). In JSON: as a string (between quotes) or, if it reads as a number, as a bare number.
    """
    v = re.escape(value_text)
    if not json_source:
        pattern = rf"(?<!\w){v}(?!\w)"
    else:
        pattern = rf'(?<=")({v})(?=")'
        if _number_like(value_text):
            pattern += rf"|(?<=[:\[,\s])({v})(?=[,\]}}\s])"
    return [m.span() for m in re.finditer(pattern, text)]


def copy_consistency(tok, tasks: Sequence, response_render=None) -> dict:
    """Per argument value of every gold call: are its ids in the call the ids at its source?

    Sources: the query (when the value's text stands there verbatim) and the responses of the
    task's earlier steps, rendered by `response_render` (compact JSON by default), when the value
    stands there as a JSON string or number. A (value, source) pair counts as consistent when every
    occurrence in that source has the call's ids. Values whose JSON text differs from their raw
    text (escapes) are left out of the query check.
    """
    backend = tok.backend_tokenizer if hasattr(tok, "backend_tokenizer") else tok
    render = response_render or (lambda r: json.dumps(r, ensure_ascii=False, separators=(",", ":")))

    counts = dict(values=0, nowhere=0, query_found=0, query_same=0, response_found=0, response_same=0)
    failures = []
    for task in tasks:
        calls = [format_tool_call(step.call) for step in task.steps]
        texts = [task.query] + calls + [render(step.response) for step in task.steps[:-1]]  # last: no reader
        encs = [_Encoded(t, e) for t, e in zip(texts, backend.encode_batch(texts, add_special_tokens=False))]
        query, call_encs, response_encs = encs[0], encs[1:1 + len(calls)], encs[1 + len(calls):]
        for i, step in enumerate(task.steps):
            call = call_encs[i]
            for path, leaf in _leaves(step.call.arguments):
                counts["values"] += 1
                start, end = _leaf_span(step.call, path, leaf)
                value_text = call.text[start:end]
                want = call.span_ids(start, end)
                raw_ok = not isinstance(leaf, str) or value_text == leaf
                sources = [("query", query, False)] if raw_ok else []
                sources += [("response", enc, True) for enc in response_encs[:i]]
                found = {"query": False, "response": False}
                same = {"query": True, "response": True}
                for kind, enc, is_json in sources:
                    for s, e in _occurrences(enc.text, value_text, is_json):
                        found[kind] = True
                        got = enc.span_ids(s, e)
                        if want is None or got != want:
                            same[kind] = False
                            failures.append(dict(task=task.task_id, step=step.index, kind=kind,
                                                 value=value_text, call_ids=want, source_ids=got))
                counts["nowhere"] += not (found["query"] or found["response"])
                for kind in ("query", "response"):
                    if found[kind]:
                        counts[f"{kind}_found"] += 1
                        counts[f"{kind}_same"] += int(same[kind])
    found = counts["query_found"] + counts["response_found"]
    same = counts["query_same"] + counts["response_same"]
    return dict(counts, fraction=same / found if found else float("nan"),
                query_fraction=_ratio(counts["query_same"], counts["query_found"]),
                response_fraction=_ratio(counts["response_same"], counts["response_found"]),
                failures=failures)


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def tokens_per_item(tok, tasks: Sequence) -> dict:
    """Mean tokens per query, gold call, and response (compact JSON and the env's pruned view)."""
    backend = tok.backend_tokenizer if hasattr(tok, "backend_tokenizer") else tok
    pruned = ResponseView()
    items: dict[str, list[str]] = {"query": [], "call": [], "response_compact": [], "response_pruned": []}
    for task in tasks:
        items["query"].append(task.query)
        for step in task.steps:
            items["call"].append(format_tool_call(step.call))
            items["response_compact"].append(
                json.dumps(step.response, ensure_ascii=False, separators=(",", ":")))
            items["response_pruned"].append(pruned.render(step.response))
    out = {}
    for name, texts in items.items():
        n_tokens = sum(len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False))
        out[name] = dict(mean_tokens=n_tokens / len(texts),
                         chars_per_token=sum(map(len, texts)) / max(n_tokens, 1))
    return out


def measure(tok, tasks: Sequence) -> dict:
    pretty = lambda r: json.dumps(r, ensure_ascii=False, indent=2)  # noqa: E731
    compact = copy_consistency(tok, tasks)
    return dict(vocab_size=len(tok), copy_consistency={k: v for k, v in compact.items() if k != "failures"},
                copy_consistency_pretty_json=copy_consistency(tok, tasks, pretty)["fraction"],
                copy_consistency_pruned_view=copy_consistency(tok, tasks, ResponseView().render)["fraction"],
                failures_sample=compact["failures"][:10], tokens=tokens_per_item(tok, tasks))


@hydra.main(config_path="../conf", config_name="tokenizer", version_base=None)
def main(cfg: DictConfig) -> None:
    eco = load_booking(resolve_data_root(cfg.data.root))
    corpus = corpus_from_ecosystem(eco)
    template = None
    if cfg.chat_template:
        from orchestra.model.chat import CHAT_TEMPLATE  # the model engineer's Qwen2.5-style template
        template = CHAT_TEMPLATE
    tok = build_tokenizer(corpus, cfg.vocab_size, template, digit_group=cfg.digit_group,
                          min_frequency=cfg.min_frequency)
    files = save_tokenizer(tok, cfg.out_dir)
    report = dict(config=OmegaConf.to_container(cfg, resolve=True), corpus_texts=len(corpus),
                  corpus_chars=sum(map(len, corpus)), copy_friendly=measure(tok, eco.tasks))
    if cfg.compare_byte_level:
        report["byte_level_bpe"] = measure(byte_level_bpe(corpus, cfg.vocab_size), eco.tasks)
    with open(os.path.join(cfg.out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    summary = {name: dict(vocab=r["vocab_size"], copy=round(r["copy_consistency"]["fraction"], 4),
                          copy_query=round(r["copy_consistency"]["query_fraction"], 4),
                          copy_response=round(r["copy_consistency"]["response_fraction"], 4),
                          copy_pretty=round(r["copy_consistency_pretty_json"], 4),
                          copy_pruned=round(r["copy_consistency_pruned_view"], 4),
                          tokens={k: round(v["mean_tokens"], 1) for k, v in r["tokens"].items()})
               for name, r in report.items() if name in ("copy_friendly", "byte_level_bpe")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {', '.join(files)} and report.json to {cfg.out_dir}")


if __name__ == "__main__":
    main()
