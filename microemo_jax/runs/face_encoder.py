"""The demo's pretrained face encoder as a parameter folder: written on request or on first use.

    python -m microemo_jax.runs.face_encoder OUT [--config configs/emer.py:demo] [--examples N] [--steps N]

writes OUT/params (only ``face_vit/...``: a stage-1 run with ``init.face_encoder=OUT`` starts its face ViT from it,
the rest keeps its fresh init), OUT/model_config.json, OUT/face_encoder.json (what it was trained on and its
held-out R^2) and, last, OUT/checksums.json. ``init.face_encoder='demo'`` builds one under ``data.demo_cache``
(``ensure_face_encoder``). The pretraining itself is ``demo.face_encoder``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from microemo_jax.checksums import MANIFEST
from microemo_jax.demo.face_encoder import EXAMPLES, STEPS, cache_key, pretrain
from microemo_jax.params import save_params


def write_face_encoder(out: str, model_cfg, *, examples: int = EXAMPLES, steps: int = STEPS, seed: int = 0,
                       log=None) -> dict:
    """Pretrain and write ``out`` (params/ with ``face_vit/...``, model_config.json, face_encoder.json and, last,
    checksums.json: a folder without it is unfinished). ``out`` must be new, empty or an earlier face encoder."""
    out = os.path.abspath(os.path.expanduser(out))
    if model_cfg.micro_expression.face_encoder != 'separate':
        raise ValueError("a pretrained face encoder is for model.micro_expression.face_encoder='separate' "
                         f"(got {model_cfg.micro_expression.face_encoder!r}: the frame ViT reads the faces)")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, 'face_encoder.json')):
        raise FileExistsError(f"{out} holds other files; give a new or empty folder for the face encoder")
    model, report = pretrain(model_cfg, examples=examples, steps=steps, seed=seed, log=log)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'face_encoder.json'), 'w') as f:   # before save_params stamps the checksums
        json.dump(report, f, indent=2)
    save_params(out, model.encoder, model_cfg)
    return report


def face_encoder_path(cfg) -> str:
    """The demo face encoder's folder under ``data.demo_cache``; its name changes with what shapes it."""
    key = cache_key(cfg.model, examples=EXAMPLES, steps=STEPS, seed=0)
    return os.path.join(os.path.expanduser(cfg.data.demo_cache), f'face-encoder-{key}')


def ensure_face_encoder(cfg) -> str:
    """The demo face encoder's folder, pretrained first if needed (about two minutes on 2 cores)."""
    path = face_encoder_path(cfg)
    if os.path.isfile(os.path.join(path, MANIFEST)):      # written last: the folder is whole
        return path
    print(f'pretraining the demo face encoder (action units of rendered faces) into {path}', flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_face_encoder(path, cfg.model, examples=EXAMPLES, steps=STEPS, seed=0)
    return path


def main(argv=None) -> None:
    from microemo_jax.config import config_from_argv  # noqa: PLC0415 (the CLI only)
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 epilog='--config configs/emer.py:demo [--config.KEY=VALUE]: the model whose '
                                        'micro_expression.face_vision to build (default: the demo)')
    ap.add_argument('out', help='folder to write (params/, face_encoder.json)')
    ap.add_argument('--examples', type=int, default=EXAMPLES)
    ap.add_argument('--steps', type=int, default=STEPS)
    ap.add_argument('--seed', type=int, default=0)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == '--config' or a.startswith('--config=') for a in argv):
        argv += ['--config', 'configs/emer.py:demo']
    cfg, rest = config_from_argv(argv)
    a = ap.parse_args(rest)
    report = write_face_encoder(a.out, cfg.model, examples=a.examples, steps=a.steps, seed=a.seed)
    print(json.dumps({'out': a.out, 'held_out_r2_mean': report['held_out_r2_mean']}))


if __name__ == '__main__':
    main()
