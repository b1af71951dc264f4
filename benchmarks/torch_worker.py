"""The PyTorch side of a benchmark: the benchmark script itself, re-run with ``--torch-worker`` under the
reference environment's Python (.venv-ref: Python 3.11 + torch 2.13, which this project never imports),
answering one JSON request per line. Shared by generate_speed.py and llm_train_step.py."""
from __future__ import annotations

import json
import os
import subprocess


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


def start(side_class, args):
    """The PyTorch side of a run (it writes the shared checkpoint if it is missing)."""
    if not os.path.exists(args.torch_python):
        raise SystemExit(f"{args.torch_python} is missing: `make fixtures` builds .venv-ref (Python 3.11, torch 2.13)")
    os.makedirs(args.ckpt, exist_ok=True)
    return side_class(args.torch_python, args.ckpt, args.threads)
