"""Sampler throughput: our jitted JAX sampler against transformers (torch, CPU) `generate`.

Both run the same random-weight model (the `small` preset shape by default; the torch model is
saved with `save_pretrained` and loaded here with our loader, so the weights are identical), the
same batch, the same prompt length and the same number of new tokens with no stop tokens, so both
produce exactly the same number of tokens. Two workloads:

  distinct: `--batch` different prompts; greedy on both sides is the like-for-like row (and the
            tokens are cross-checked), tempered rows show the cost of the RL settings;
  GRPO:     `--batch / --group` prompts sampled `--group` times each at temperature 1, as an RL
            step does; torch runs `generate(do_sample=True, num_return_sequences=group)`.

Compilation (JAX) is excluded; each figure is the best of `--repeats` runs. Wall-clock and process
CPU time are both reported: CPU time counts the work of all threads and is far less disturbed when
the machine is shared (torch's default thread pool degrades badly under contention; `--torch-threads 1`
is torch's best case there).

    python -m experiments.bench.bench_sampler [--batch 64 --prompt-len 256 --new-tokens 128]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from orchestra.model.loader import load_model
from orchestra.model.presets import preset_config
from orchestra.model.sampler import Sampler, SamplingParams


def best_time(fn, repeats: int) -> np.ndarray:
    """Best [wall seconds, process CPU seconds] over `repeats` calls."""
    best = np.full(2, np.inf)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = np.minimum(best, [time.perf_counter() - wall, time.process_time() - cpu])
    return best


def print_table(title: str, rows, batch: int, new: int) -> None:
    """rows: (name, prefill [wall, cpu], total [wall, cpu]); the last row is the torch baseline."""
    for clock, index in (("wall-clock", 0), ("process CPU time", 1)):
        base_total = rows[-1][2][index]
        base_decode = base_total - rows[-1][1][index]
        header = (f"{title + ', ' + clock:<40} {'prefill s':>9} {'total s':>8} {'tok/s':>7} {'x torch':>8} "
                  f"{'decode tok/s':>13} {'x torch':>8}")
        print(header)
        print("-" * len(header))
        for name, prefill, total in rows:
            decode = total[index] - prefill[index]
            print(f"{name:<40} {prefill[index]:9.2f} {total[index]:8.2f} {batch * new / total[index]:7.0f} "
                  f"{base_total / total[index]:7.2f}x {batch * (new - 1) / decode:13.0f} {base_decode / decode:7.2f}x")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--group", type=int, default=8, help="samples per prompt in the GRPO workload")
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads; 0 keeps its default")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    batch, new, group = args.batch, args.new_tokens, args.group

    config = preset_config(args.preset, dtype="float32")
    torch.manual_seed(0)
    torch_model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config.to_hf())).eval()
    with tempfile.TemporaryDirectory() as checkpoint:
        torch_model.save_pretrained(checkpoint)
        model = load_model(checkpoint)
    sampler = Sampler(model, stop_sequences=())  # no stops: every row makes exactly `new` tokens

    prompts = np.random.RandomState(0).randint(0, config.vocab_size, (batch, args.prompt_len))
    grpo_prompts = np.repeat(prompts[: batch // group], group, axis=0)

    def ours(rows: np.ndarray, params: SamplingParams):
        def prefill():
            jax.block_until_ready(sampler.prefill(rows.tolist()).device)

        def run():
            output, _ = sampler.sample(rows.tolist(), new, params, seed=0)
            assert (output.lengths == new).all()
            return output

        output = run()  # compiles
        prefill()
        return output, best_time(prefill, args.repeats), best_time(run, args.repeats)

    def torch_generate(rows: np.ndarray, tokens: int, **sampling):
        input_ids = torch.tensor(rows)
        with torch.inference_mode():
            return torch_model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=tokens,
                min_new_tokens=tokens, eos_token_id=None, pad_token_id=0, **sampling,
            )

    distinct_rows = []
    greedy_tokens = None
    for name, params in (("greedy", SamplingParams(temperature=0.0)), ("T=1", SamplingParams(temperature=1.0)),
                         ("T=1, top-p 0.9", SamplingParams(temperature=1.0, top_p=0.9))):
        output, prefill, total = ours(prompts, params)
        greedy_tokens = output.tokens if greedy_tokens is None else greedy_tokens
        distinct_rows.append((f"ours (JAX), {name}", prefill, total))
    generated = []
    torch_total = best_time(lambda: generated.append(torch_generate(prompts, new, do_sample=False)), args.repeats)
    torch_prefill = best_time(lambda: torch_generate(prompts, 1, do_sample=False), args.repeats)
    distinct_rows.append(("transformers (torch), greedy", torch_prefill, torch_total))
    agreement = float(np.mean(generated[0][:, args.prompt_len:].numpy() == greedy_tokens))

    _, prefill, total = ours(grpo_prompts, SamplingParams(temperature=1.0))
    torch_sampling = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=group)
    grpo_rows = [
        ("ours (JAX), T=1, prompts encoded once", prefill, total),
        ("transformers (torch), T=1", torch_prefill,
         best_time(lambda: torch_generate(prompts[: batch // group], new, **torch_sampling), args.repeats)),
    ]

    print(f"model: preset {args.preset}, {config.num_parameters() / 1e6:.1f}M parameters, float32 | batch {batch}, "
          f"prompt {args.prompt_len}, new tokens {new} | jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads | {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"greedy tokens identical to torch's on {100 * agreement:.1f}% of positions\n")
    print_table(f"distinct: {batch} prompts", distinct_rows, batch, new)
    print_table(f"GRPO: {batch // group} prompts x {group}", grpo_rows, batch, new)
    print("tok/s: new tokens per second, prefill included; decode tok/s: tokens after the first, prefill excluded\n"
          "(torch's GRPO prefill is taken from its distinct-prompt run: it encodes every row anyway)")


if __name__ == "__main__":
    main()
