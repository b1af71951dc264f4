"""Build tiny random Hugging Face checkpoints and record transformers' outputs on them.

Runs the *reference* implementations (PyTorch + transformers) so that the JAX tests can check parity
without PyTorch. Needs Python 3.11 with torch 2.13 (CPU) and the transformers version of
requirements.lock; ``make fixtures`` creates that environment (.venv-ref) and runs this script:

    make fixtures                      # all kinds
    .venv-ref/bin/python tools/make_reference_fixtures.py --only llama,whisper

Each kind lives in ``tools/reference_fixtures/<kind>.py`` and writes one folder per case under
``tests/fixtures/hf/``: the checkpoint exactly as ``save_pretrained`` wrote it, plus ``reference.npz``
with the inputs fed to transformers and the outputs it returned (float32).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

KINDS = ('llama', 'llama_generate', 'qwen', 'blip2_vision', 'qformer', 'whisper', 'whisper_asr')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'hf'))
    parser.add_argument('--only', default=','.join(KINDS), help='comma-separated subset of ' + ','.join(KINDS))
    args = parser.parse_args(argv)
    import torch
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    sys.path.insert(0, os.path.dirname(__file__))
    for kind in args.only.split(','):
        if kind not in KINDS:
            parser.error(f"unknown kind {kind!r}; choose from {KINDS}")
        module = importlib.import_module(f'reference_fixtures.{kind}')
        print(f'[{kind}]', flush=True)
        module.make(os.path.abspath(args.out))


if __name__ == '__main__':
    main()
