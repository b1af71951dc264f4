"""The PyTorch side of a benchmark: the benchmark script itself, re-run with ``--torch-worker`` under the
reference environment's Python (.venv-ref: Python 3.11 + torch 2.13, which this project never imports),
answering one JSON request per line. Shared by generate_speed.py and llm_train_step.py."""
from __future__ import annotations

import json
import os
import subprocess

# The checkpoint both benchmarks time (issue 14's size: about 180 MB of float32 weights).
CONFIG = dict(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
              num_key_value_heads=8, max_position_embeddings=2048, rms_norm_eps=1e-6)


def reference_llama(ckpt: str, threads: int | None):
    """(torch, transformers' LlamaForCausalLM from ``ckpt``, info dict); writes a seeded random checkpoint of
    ``CONFIG`` there first if there is none. Runs in the worker, under .venv-ref."""
    import torch
    import transformers
    if threads:
        torch.set_num_threads(threads)
    if not os.path.exists(os.path.join(ckpt, 'config.json')):
        torch.manual_seed(0)
        transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG)).save_pretrained(ckpt)
    model = transformers.LlamaForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    info = dict(torch=torch.__version__, threads=torch.get_num_threads(), transformers=transformers.__version__)
    return torch, model, info


class TorchWorker:
    def __init__(self, script: str, python: str, ckpt: str, threads: int | None):
        cmd = [python, os.path.abspath(script), '--torch-worker', '--ckpt', ckpt]
        if threads:
            cmd += ['--threads', str(threads)]
        env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TRANSFORMERS_VERBOSITY='error')
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()   # the worker's first line: what it loaded

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the PyTorch worker exited (code {self.proc.wait()}); see its error above")
        return json.loads(line)

    def request(self, payload: dict) -> dict:
        self.proc.stdin.write(json.dumps(payload) + '\n')
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def add_arguments(parser, root: str) -> None:
    """The flags every benchmark with a PyTorch side takes."""
    import argparse
    parser.add_argument('--torch-worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--ckpt', default=os.path.expanduser('~/.cache/microemo-jax/bench/llama_4x512_v32000'))
    parser.add_argument('--torch-python', default=os.path.join(root, '.venv-ref', 'bin', 'python'))
    parser.add_argument('--threads', type=int, default=None, help='PyTorch intra-op threads (default: its own)')


def parse_and_start(parser, argv, worker, side_class):
    """``(args, the PyTorch side)`` for a benchmark's main process; ``(args, None)`` after serving as the worker
    (``--torch-worker``: ``worker(ckpt, threads)`` ran until its input closed)."""
    parser.add_argument('--out', default=None, help='JSON file for the results')
    args = parser.parse_args(argv)
    if args.torch_worker:
        worker(args.ckpt, args.threads)
        return args, None
    return args, start(side_class, args)


def start(side_class, args):
    """The PyTorch side of a run (it writes the shared checkpoint if it is missing)."""
    if not os.path.exists(args.torch_python):
        raise SystemExit(f"{args.torch_python} is missing: `make fixtures` builds .venv-ref (Python 3.11, torch 2.13)")
    os.makedirs(args.ckpt, exist_ok=True)
    return side_class(args.torch_python, args.ckpt, args.threads)
