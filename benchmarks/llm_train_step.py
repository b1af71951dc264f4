r"""LLM train step: ours (jitted fwd + bwd + AdamW) against transformers' PyTorch LlamaForCausalLM.

    .venv/bin/python benchmarks/llm_train_step.py                                   # ~3-4 min on 2 cores
    .venv/bin/python benchmarks/llm_train_step.py --variants plain chunked --rounds 6 --out runs/llm_train_step.json

Issue 14's size: 4 layers, hidden 512, 8 heads, MLP 1376, vocab 32000 (untied head), float32, batch 4 x 512
tokens, next-token loss on every position, AdamW (lr 1e-4, weight decay 0.01, both sides). The checkpoint
is the one ``benchmarks/generate_speed.py`` uses (a random ``LlamaForCausalLM`` the PyTorch side writes once
with ``save_pretrained`` into ``--ckpt``); our side reads the same folder with ``hf.load_llama``.

The PyTorch side runs in the Python 3.11 + torch 2.13 CPU environment ``make fixtures`` builds (``.venv-ref``)
as a worker subprocess (``model(input_ids, labels=input_ids).loss.backward(); opt.step()``). The sides take
turns, one step each per round (each of our variants, then PyTorch), on the same token ids; each step is timed
from the call to its result on the host, and the fastest of ``--rounds`` is reported: the machines are shared,
so the ratio is the figure to read. CPU time (process time of each side's step: all its threads) is reported
too: on a machine other jobs share it moves less than wall time. The first step's loss of each side is printed (same weights, same ids:
they must agree).

The bound, measured in the same run: the step's matmul FLOPs (counted on our step's jaxpr, forward and backward;
PyTorch runs the same matmuls) over each side's time, against the float32 matmul peak of each library (the
fastest 2048^3 matmul of XLA, ``floors.py``, and of ``torch.mm`` in the worker). The goal of at most
``GOAL`` x PyTorch's time needs the FLOP rate printed beside them.

Our variants:
  plain    ``Llama(...)`` logits (B, S, 32000) float32 -> ``losses.next_token_loss`` (log-softmax), autodiff
  chunked  final hidden states -> ``training.losses.chunked_next_token_loss`` (head fused with the loss, rows in
           chunks of ``--chunk``; no (B, S, V) logits anywhere, gradients computed in the forward pass)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import floors  # benchmarks/floors.py: what the machine allows, measured in the same run
import torch_worker as torch_worker_lib  # benchmarks/torch_worker.py: the PyTorch side
from torch_worker import TorchWorker

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
CONFIG = torch_worker_lib.CONFIG
LR, WEIGHT_DECAY = 1e-4, 0.01
GOAL = 0.6  # issue 14: our step in at most 0.6x PyTorch's time


# ----------------------------------------------------------------------------------------------------
# PyTorch worker (runs under .venv-ref): one JSON request per line on stdin, one JSON answer per line.
def torch_worker(ckpt: str, threads: int | None) -> None:
    torch, model, info = torch_worker_lib.reference_llama(ckpt, threads)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    print(json.dumps(dict(info, attn=model.config._attn_implementation)), flush=True)
    ids = None
    for line in sys.stdin:
        req = json.loads(line)
        if 'peak' in req:  # torch's own float32 matmul peak: FLOP/s of the fastest (n, n) @ (n, n)
            a, best = torch.ones(req['peak'], req['peak']), float('inf')
            for _ in range(6):
                t = time.perf_counter()
                torch.mm(a, a)
                best = min(best, time.perf_counter() - t)
            print(json.dumps(dict(flops_s=2 * req['peak'] ** 3 / best)), flush=True)
            continue
        if 'input_ids' in req:
            ids = torch.tensor(req['input_ids'], dtype=torch.long)
        t, c = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        value = float(loss)
        print(json.dumps(dict(seconds=time.perf_counter() - t, cpu_seconds=time.process_time() - c, loss=value)),
              flush=True)


class TorchSide(TorchWorker):
    def __init__(self, python: str, ckpt: str, threads: int | None):
        super().__init__(__file__, python, ckpt, threads)

    def step(self, input_ids=None) -> tuple[float, float, float]:
        ans = self.request({} if input_ids is None else dict(input_ids=input_ids.tolist()))
        return ans['seconds'], ans['loss'], ans['cpu_seconds']

    def matmul_peak(self, n: int = 2048) -> float:
        return self.request(dict(peak=n))['flops_s']


# ----------------------------------------------------------------------------------------------------
def make_ours(ckpt: str, variant: str, chunk: int):
    """(step(ids) -> loss as a float, first-call seconds) for one variant; params and AdamW state are donated."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from microemo_jax.hf import load_llama
    from microemo_jax.training.losses import chunked_next_token_loss, next_token_loss

    model = load_llama(ckpt)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(LR, weight_decay=WEIGHT_DECAY)
    opt_state = tx.init(params)

    def loss_fn(params, ids):
        m = nnx.merge(graphdef, params)
        mask = jnp.ones(ids.shape, bool)
        if variant == 'plain':
            return next_token_loss(m(ids), ids, mask)[0]
        return chunked_next_token_loss(m(ids, hidden_only=True), m.head_kernel(), ids, mask, chunk=chunk)[0]

    def _step(params, opt_state, ids):
        loss, grads = jax.value_and_grad(loss_fn)(params, ids)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step_fn = jax.jit(_step, donate_argnums=(0, 1))
    state = {'params': params, 'opt': opt_state}

    def step(ids):
        t, c = time.perf_counter(), time.process_time()
        state['params'], state['opt'], loss = step_fn(state['params'], state['opt'], ids)
        loss = float(loss)                       # waits for the step
        return time.perf_counter() - t, loss, time.process_time() - c
    return step, step_fn, state


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='benchmarks/llm_train_step.py', description=__doc__.splitlines()[0])
    torch_worker_lib.add_arguments(parser, ROOT)
    parser.add_argument('--variants', nargs='+', default=['plain', 'chunked'], choices=['plain', 'chunked'])
    parser.add_argument('--chunk', type=int, default=512, help='rows per chunk of the chunked loss')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--seq', type=int, default=512)
    parser.add_argument('--rounds', type=int, default=6)
    args, torch_side = torch_worker_lib.parse_and_start(parser, argv, torch_worker, TorchSide)
    if torch_side is None:
        return 0

    import jax
    import numpy as np
    ids = np.random.default_rng(0).integers(3, CONFIG['vocab_size'], (args.batch, args.seq)).astype(np.int32)
    from microemo_jax.training.flops import count_flops
    ours, first_loss, first_call, flops = {}, {}, {}, None
    for v in args.variants:
        ours[v], step_fn, state = make_ours(args.ckpt, v, args.chunk)
        if flops is None:  # every variant (and PyTorch) runs the same matmuls
            flops = count_flops(step_fn, state['params'], state['opt'], ids)
        first_call[v], first_loss[v], _ = ours[v](ids)          # compiles
    t_first, first_loss['pytorch'], _ = torch_side.step(ids)
    best = {v: float('inf') for v in [*args.variants, 'pytorch']}
    best_cpu = dict(best)
    for r in range(args.rounds):
        for v in [*args.variants, 'pytorch']:
            wall, _, cpu = ours[v](ids) if v in ours else torch_side.step()
            best[v], best_cpu[v] = min(best[v], wall), min(best_cpu[v], cpu)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {s:.2f} s" for k, s in best.items()), flush=True)
    peaks = dict(xla=floors.f32_matmul_peak(), torch=torch_side.matmul_peak())
    torch_side.close()

    tokens = args.batch * args.seq
    load = [round(x, 2) for x in os.getloadavg()]
    rows = [dict(side=k, step_s=s, tokens_s=tokens / s, ratio_to_pytorch=s / best['pytorch'],
                 cpu_s=best_cpu[k], cpu_ratio_to_pytorch=best_cpu[k] / best_cpu['pytorch'],
                 first_step_loss=first_loss[k], first_call_s=first_call.get(k, t_first), flops_s=flops / s)
            for k, s in best.items()]
    goal_flops_s = flops / (GOAL * best['pytorch'])
    print()
    print(f"| side | fastest step of {args.rounds} | tokens/s | time / PyTorch's | CPU time (fastest) "
          f"| CPU time / PyTorch's | first-step loss |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['step_s']:.2f} s | {r['tokens_s']:.0f} | **{r['ratio_to_pytorch']:.2f}x** | "
              f"{r['cpu_s']:.2f} s | {r['cpu_ratio_to_pytorch']:.2f}x | {r['first_step_loss']:.4f} |")
    g = lambda x: f"{x / 1e9:.0f} GFLOP/s"
    print(f"\n{flops / 1e9:.0f} GFLOP of matmuls per step. Achieved: "
          + ", ".join(f"{r['side']} {g(r['flops_s'])}" for r in rows)
          + f". Float32 matmul peak in this run: XLA {g(peaks['xla'])}, torch {g(peaks['torch'])}. "
          f"{GOAL}x PyTorch's time needs {g(goal_flops_s)} "
          f"({goal_flops_s / max(peaks.values()):.0%} of the higher peak).")
    print(f"batch {args.batch} x {args.seq}, chunk {args.chunk}; PyTorch {torch_side.info}; jax {jax.__version__} "
          f"on {jax.devices()[0].device_kind}; load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} CPUs")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(config=CONFIG, batch=args.batch, seq=args.seq, chunk=args.chunk, rounds=args.rounds,
                           rows=rows, matmul_flops=flops, f32_matmul_peak_flops_s=peaks, goal=GOAL,
                           goal_flops_s=goal_flops_s, torch=torch_side.info, jax=jax.__version__,
                           load_average_1_5_15min=load, cpu_count=os.cpu_count()), f, indent=2)
        print(f"wrote {args.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
