"""How much each input moves the tokens the LLM reads: faces, frames and audio of other clips swapped in.

    .venv/bin/python benchmarks/input_influence.py --data PREPARED [--params FOLDER | --config configs/emer.py:demo
        [--config.KEY=VALUE ...]] [--split validation] [--clips 8] [--out runs/input_influence.json]

For a batch of held-out clips, the model encodes them once as they are and once per input with that input
rolled by one clip (clip i gets clip i-1's faces, frames or audio, masks included). It prints, per input, the
mean absolute change of the video and audio tokens relative to their mean size. A part the model does not read
moves nothing: 0 means the answer cannot depend on it, whatever training did.

Why: the demo's Q-Formers, face branch and global-local attention train from scratch at a width of 64. With
BERT's N(0, 0.02) weights their outputs barely depend on their inputs (``model.kernel_init``,
``models/scratch_init.py``), and a trained model can also learn to shut a branch (a gate, an output
projection) while its loss still falls on the answers' templates. This is the check that tells the two apart
from a branch that reads its input but learned nothing useful. With ``--params`` it measures a trained model;
with ``--config`` a fresh one (the init alone).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from flax import nnx

from microemo_jax import params as params_lib
from microemo_jax.config import load_config
from microemo_jax.data import pipeline
from microemo_jax.data.shapes import DataShapes
from microemo_jax.models.input_influence import influence
from microemo_jax.models.microemo import MicroEmo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', required=True, help='a prepared dataset (python -m microemo_jax.prepare)')
    ap.add_argument('--params', help='a params folder (a trained model); else a fresh model from --config')
    ap.add_argument('--config', default='configs/emer.py:demo')
    ap.add_argument('--split', default='validation')
    ap.add_argument('--clips', type=int, default=8, help='clips in the batch (>= 2)')
    ap.add_argument('--out', help='also write the figures to this JSON file')
    args, overrides = ap.parse_known_args(argv)
    if args.clips < 2:
        ap.error('--clips must be >= 2 (each clip gets another clip\'s input)')
    if args.params:
        folder = params_lib.load(args.params)
        cfg, model = folder.cfg, folder.model
        if overrides:
            ap.error(f'config overrides apply to --config, not to a params folder: {overrides}')
    else:
        cfg = load_config(args.config, [o.removeprefix('--config.') for o in overrides])
        model = MicroEmo(cfg.model, rngs=nnx.Rngs(0))
    source = pipeline.open_split(args.data, args.split)
    if len(source) < 2:
        sys.exit(f'error: {args.data} split {args.split!r} holds {len(source)} record(s); need >= 2')
    shapes = DataShapes.from_config(cfg)
    examples = [pipeline.example_from_record(source[i], shapes) for i in range(min(args.clips, len(source)))]
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
    result = influence(model, batch)
    print(f"{'input rolled by one clip':<26}{'video tokens':>14}{'audio tokens':>14}   (mean |change| / mean |token|)")
    for name, parts in result.items():
        cells = ''.join(f"{'-' if v is None else f'{v:.2e}':>14}" for v in parts.values())
        print(f'{name:<26}{cells}')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump({'params': args.params, 'config': None if args.params else args.config,
                       'overrides': overrides, 'clips': len(examples), 'influence': result}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
