"""Does the trained LLM read what its modality tokens carry? Three measurements on one trained model.

    .venv/bin/python benchmarks/llm_reading.py --params FOLDER --data PREPARED --corpus RAW/corpus.json
        [--batches 8] [--out runs/llm_reading.json]

* ``probe``: a ridge classifier (closed form, standardised features) trained on the train split's LLM-input
  video tokens and scored on the validation split, for the face's shown expression (every clip) and for the
  hidden emotion of the micro-expression clips. It says whether the information is there, linearly, where the
  LLM reads it.
* ``answer_change``: how far the next-token distributions at the answer positions move (total variation,
  mean and max over answer tokens) when every clip of a batch gets another clip's frames and faces, another
  clip's audio, or, for scale, Gaussian noise of the video tokens' own between-clip size added to them.
  It says whether the LLM reads the tokens.
* ``gradient``: the norm of the answer loss's gradient per module, from the LLM back to the face encoder.
  It says how much of the training signal reaches each part.

Why: ``stage_probe.py`` says where the face's emotion is lost with a crude probe. This one separates "the tokens
do not carry it" from "the LLM does not read it" (docs/ablations.md, "Where the signal stops").
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax import params as params_lib
from microemo_jax.data import pipeline
from microemo_jax.training.losses import next_token_loss

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from micro_signal import write_json  # noqa: E402
from stage_probe import encode_videos  # noqa: E402


def ridge_accuracy(x_train, y_train, x_test, y_test, lam: float = 10.0) -> float:
    """Held-out accuracy of a one-vs-rest ridge classifier on standardised features, in closed form (no library
    needed for a probe this small), solved in its dual form: the features outnumber the examples."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    classes = sorted(set(y_train))
    onehot = (np.asarray(y_train)[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
    w = a.T @ np.linalg.solve(a @ a.T + lam * np.eye(len(a)), onehot)
    return float(np.mean(np.asarray(classes)[(b @ w).argmax(1)] == np.asarray(y_test)))


def labels(clip: dict) -> dict:
    """The probe's targets: the shown expression (a masking smile as its own class) and the hidden emotion."""
    shown = 'polite smile' if clip['scenario'] == 'micro_masking' else clip['face']['emotion']
    return {'shown expression': shown, 'micro-expression': clip['micro']['emotion'] if clip.get('micro') else None}


def total_variation(p, q, answer) -> dict:
    """Total variation between two (B, S, V) next-token distributions at the positions that predict an answer
    token (``answer``: the loss mask, which marks the predicted tokens)."""
    tv = 0.5 * np.abs(np.asarray(p) - np.asarray(q))[:, :-1].sum(-1)[np.asarray(answer)[:, 1:]]
    return {'mean': float(tv.mean()), 'max': float(tv.max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--params', required=True, help='a trained params folder')
    ap.add_argument('--data', required=True, help='the prepared demo corpus it trained on')
    ap.add_argument('--corpus', required=True, help="the raw corpus's corpus.json")
    ap.add_argument('--batches', type=int, default=8, help='training batches for answer_change and gradient')
    ap.add_argument('--out', help='also write the figures to this JSON file')
    args = ap.parse_args(argv)
    folder = params_lib.load(args.params)
    model, tokenizer = folder.model, (folder.tokenizers or {}).get('llm')
    with open(args.corpus, encoding='utf-8') as f:
        clips = {c['name']: c for c in json.load(f)['clips']}

    encoded = encode_videos(folder, args.data, lambda b: {'video': model.encode(b)[0][:, :model.num_video_tokens]},
                            clips)
    tokens = {video: arrays['video'] for video, (_, arrays) in encoded.items()}
    split_of = {video: split for video, (split, _) in encoded.items()}
    probe = {}
    for target in ('shown expression', 'micro-expression'):
        rows = {s: [(tokens[v], labels(clips[v])[target]) for v in tokens
                    if split_of[v] == s and labels(clips[v])[target]] for s in ('train', 'validation')}
        if len(rows['train']) < 8 or not rows['validation']:
            continue
        (xa, ya), (xb, yb) = (tuple(map(np.stack, zip(*rows[s]))) for s in ('train', 'validation'))
        probe[target] = {'train_clips': len(ya), 'validation_clips': len(yb), 'classes': len(set(ya)),
                         'validation_accuracy': ridge_accuracy(xa, ya, xb, yb)}
    between = float(np.std(np.stack(list(tokens.values())), axis=0).mean())

    probs = jax.jit(lambda b: jax.nn.softmax(model(b), -1))
    prompt_embeddings = jax.jit(model.prompt_embeddings)
    embeds_probs = jax.jit(lambda e, m: jax.nn.softmax(model.llm(inputs_embeds=e, attention_mask=m), -1))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p, batch):
        return next_token_loss(nnx.merge(graphdef, p, rest)(batch), batch['input_ids'], batch['loss_mask'])[0]

    grad = jax.jit(jax.grad(loss))
    changes = {'frames and faces of another clip': [], 'audio of another clip': [],
               'noise of the video tokens\' between-clip size': []}
    grad_sq: dict[str, float] = {}
    seen = 0
    it = pipeline.make_iterator(pipeline.open_split(args.data, 'train'), folder.cfg, train=False, num_workers=0,
                                tokenizer=tokenizer)
    for n, batch in enumerate(it):
        if n >= args.batches:
            break
        batch, seen = {k: v for k, v in batch.items() if k != 'names'}, seen + 1
        where = batch['loss_mask'].astype(bool)
        base = probs(batch)
        for key, fields in (('frames and faces of another clip', ('frames', 'frame_mask', 'faces', 'face_mask',
                                                                    'face_landmarks', 'face_landmark_mask')),
                            ('audio of another clip', ('audio_mel', 'audio_mask'))):
            moved = {k: (np.roll(v, 1, axis=0) if k in fields else v) for k, v in batch.items()}
            changes[key].append(total_variation(base, probs(moved), where))
        embeds, mask = prompt_embeddings(batch)
        rows = np.arange(embeds.shape[0])[:, None]
        pos = batch['modality_positions'][:, :model.num_video_tokens]
        noise = between * jax.random.normal(jax.random.key(n), embeds.shape)
        noisy = embeds.at[rows, pos].add(noise[rows, pos])
        changes['noise of the video tokens\' between-clip size'].append(
            total_variation(base, embeds_probs(noisy, mask), where))
        for path, g in nnx.to_flat_state(grad(params, batch)):
            key = '/'.join(str(p) for p in path[:2])
            grad_sq[key] = grad_sq.get(key, 0.0) + float(jnp.sum(jnp.square(g.get_value().astype(jnp.float32))))
    answer_change = {k: {'mean': float(np.mean([c['mean'] for c in v])), 'max': float(np.max([c['max'] for c in v]))}
                     for k, v in changes.items() if v}
    gradient = {k: float(np.sqrt(v / max(1, seen))) for k, v in
                sorted(grad_sq.items(), key=lambda kv: -kv[1])}
    result = {'params': os.path.abspath(args.params), 'probe': probe, 'video_token_between_clip_std': between,
              'answer_change': answer_change, 'gradient_rms_norm': gradient}
    for target, r in probe.items():
        print(f"probe, {target}: {r['validation_accuracy']:.2f} on {r['validation_clips']} held-out clips "
              f"({r['classes']} classes, ridge trained on {r['train_clips']})")
    for key, r in answer_change.items():
        print(f"answer change, {key}: mean {r['mean']:.4f}, max {r['max']:.4f} (total variation)")
    print('gradient norm per module: ' + ', '.join(f'{k} {v:.1e}' for k, v in list(gradient.items())[:12]))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
