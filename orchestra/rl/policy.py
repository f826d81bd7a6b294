"""A trained model as an evaluation policy: chat messages in, the assistant's next turn out."""

from __future__ import annotations


from orchestra.model.chat import IM_END, encode_chat, stop_sequences
from orchestra.model.modeling import Transformer
from orchestra.model.sampler import Sampler, SamplingParams


class SamplerPolicy:
    """Implements `orchestra.eval.Policy`: each call prefills the conversations and samples one
    assistant turn (up to `<|im_end|>`). Greedy by default, as evaluation should be."""

    def __init__(self, model: Transformer, tokenizer, max_new_tokens: int = 256,
                 sampling: SamplingParams = SamplingParams(temperature=0.0), seed: int = 0):
        self.tokenizer, self.max_new_tokens, self.sampling, self.seed = tokenizer, max_new_tokens, sampling, seed
        close_call = tokenizer.encode("</tool_call>", add_special_tokens=False)
        stops = [s for s in stop_sequences(tokenizer) if s != close_call]  # whole turns, several calls allowed
        self.sampler = Sampler(model, stop_sequences=stops, pad_id=tokenizer.pad_token_id or 0)
        self.context = model.config.max_position_embeddings
        self._im_end = tokenizer.encode(IM_END, add_special_tokens=False)
        self._calls = 0

    def update(self, model: Transformer) -> None:
        self.sampler.update_params(model)

    def generate(self, conversations: list[list[dict]], tools: list[list[dict]]) -> list[str]:
        prompts = [encode_chat(self.tokenizer, conv, t, add_generation_prompt=True).token_ids.tolist()
                   for conv, t in zip(conversations, tools)]
        fits = [len(p) + self.max_new_tokens <= self.context for p in prompts]
        texts = [""] * len(prompts)  # a conversation past the context gets an empty answer (ends it)
        rows = [i for i, ok in enumerate(fits) if ok]
        if not rows:
            return texts
        out, _ = self.sampler.sample([prompts[i] for i in rows], self.max_new_tokens, self.sampling,
                                     seed=self.seed + self._calls)
        self._calls += 1
        for j, i in enumerate(rows):
            ids = out.row(j)
            if ids[-len(self._im_end):] == self._im_end:
                ids = ids[: -len(self._im_end)]
            texts[i] = self.tokenizer.decode(ids, skip_special_tokens=False)
        return texts
