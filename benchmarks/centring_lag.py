"""What the LLM's video tokens hold besides the clips' differences: the centring's lag and the dropout's noise.

    .venv/bin/python benchmarks/centring_lag.py --params FOLDER --data PREPARED [--batches 40]
        [--checkpoints RUN/checkpoints] [--out runs/centring_lag.json]

On a trained model with video centring (``model.video_centring``), over ``--batches`` batches of the training
split, per mode (with and without the training augmentation, with and without dropout):

* ``offset``: the distance between the uncentred video tokens' mean and the running mean the model subtracts
  (per token, mean over the whole-video slots, which every clip fills), i.e. the part every clip's LLM input
  shares;
* ``spread``: the clips' mean distance from their own mean (per token, whole-video slots), i.e. what differs
  between clips. In training mode it includes the dropout's noise.

With ``--checkpoints`` (a run's Orbax checkpoints) also how far the running mean of those slots moved between
consecutive saved steps. Why: the LLM reads RMS-normed tokens, so an offset or a noise larger than the spread
drowns what tells the clips apart (docs/ablations.md, "The failing seed's LLM").
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from microemo_jax import params as params_lib
from microemo_jax.data import pipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from micro_signal import write_json  # noqa: E402


def token_statistics(folder, data_dir: str, batches: int) -> dict:
    """{mode: {'offset': float, 'spread': float}} over ``batches`` training batches (see the module docstring)."""
    model = folder.model
    slots = model.cfg.video_qformer.num_query_tokens            # the whole-video slots come first
    centre = np.asarray(model.video_centre[...])[:slots]

    def uncentred(batch, rng):
        return model.encode(batch, dropout_rng=rng)[0][:, :slots] / model.video_gain + centre

    run = jax.jit(uncentred)
    out = {}
    for augment in (False, True):
        for dropout in (False, True):
            it = pipeline.make_iterator(pipeline.open_split(data_dir, 'train'), folder.cfg, train=augment,
                                        num_workers=0, tokenizer=(folder.tokenizers or {}).get('llm'))
            whole = []
            for i, batch in enumerate(it):
                if i >= batches:
                    break
                x = run({k: a for k, a in batch.items() if k != 'names'}, jax.random.key(i) if dropout else None)
                whole.append(np.asarray(x))
            whole = np.concatenate(whole)
            out[f"augment={augment}, dropout={dropout}"] = {
                'offset': float(np.linalg.norm(whole.mean(0) - centre, axis=-1).mean()),
                'spread': float(np.linalg.norm(whole - whole.mean(0), axis=-1).mean())}
    return out


def centre_movement(checkpoints: str, slots: int) -> dict:
    """{'A->B': how far the running mean moved between saved steps A and B, per token of the first ``slots``}."""
    steps = sorted(int(s) for s in os.listdir(checkpoints) if s.isdigit())
    centres = {}
    with ocp.PyTreeCheckpointer() as ckptr:
        for step in steps:
            state = ckptr.restore(os.path.join(checkpoints, str(step), 'state'))
            centres[step] = np.asarray(state['params']['video_centre']['value'])[:slots]
    return {f"{a}->{b}": float(np.linalg.norm(centres[b] - centres[a], axis=-1).mean())
            for a, b in zip(steps, steps[1:])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--params', required=True, help='a trained params folder (with video centring)')
    ap.add_argument('--data', required=True, help='the prepared corpus it trained on')
    ap.add_argument('--batches', type=int, default=40, help='training batches per mode')
    ap.add_argument('--checkpoints', help="a run's checkpoints folder: also how far the running mean moved")
    ap.add_argument('--out', help='also write the figures to this JSON file')
    args = ap.parse_args(argv)
    folder = params_lib.load(args.params)
    if folder.model.video_centre is None:
        sys.exit('error: this model has no video centring (model.video_centring.gain is 0)')
    result = {'params': os.path.abspath(args.params),
              'tokens': token_statistics(folder, args.data, args.batches)}
    for mode, r in result['tokens'].items():
        print(f"{mode}: offset {r['offset']:.3f}, spread between clips {r['spread']:.3f} (per token)")
    if args.checkpoints:
        result['centre_moved'] = centre_movement(args.checkpoints, folder.cfg.model.video_qformer.num_query_tokens)
        print('running mean moved: ' + ', '.join(f'{k} {v:.3f}' for k, v in result['centre_moved'].items()))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
