"""Where does a trained model lose the face's emotion? A nearest-centroid probe at each stage of the face path.

    .venv/bin/python benchmarks/stage_probe.py --params FOLDER --data PREPARED --corpus RAW/corpus.json
        [--out runs/stage_probe.json]

For the demo corpus's clips of a few scenarios (the micro-expression clips: their hidden emotion; face_only: the
face's emotion), it encodes every clip of both splits with the trained model and probes, leave-one-out with the
nearest class mean (``micro_signal.nearest_centroid_loo``), each stage of the path from the face to the LLM:

* ``face_features``: the face encoder's class token of every crop (the separate face ViT, or the frame ViT);
* ``local_tokens``: the micro-expression branch's output;
* ``global_local_change``: what global-local attention adds to the frame tokens;
* ``video_tokens``: the LLM-input video tokens.

Why: ``micro_signal.py`` shows that the records carry the signal and ``input_influence.py`` that the faces
move the LLM input; this says at which stage a trained model stops telling the emotions apart. The probe is
crude (every number of a stage, standardised), so read it as a floor, and compare stages within one model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from microemo_jax import params as params_lib
from microemo_jax.data import pipeline
from microemo_jax.pixels import normalise

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from micro_signal import nearest_centroid_loo, write_json  # noqa: E402

GROUPS = {'micro': ('micro_suppressed', 'micro_masking'), 'face_only': ('face_only',)}


def stages(model, batch: dict) -> dict:
    """The face path's intermediate arrays of one batch (the model's own modules, in inference mode)."""
    faces = normalise(batch['faces'], batch['face_mask'], xp=jnp)
    b, t, k = faces.shape[:3]
    vit = model.face_vit if model.face_vit is not None else model.frame_encoder.vit
    feats = vit(faces.reshape((b * t * k,) + faces.shape[3:]))[:, 0].reshape(b, t, k, -1)
    local, local_mask = model.encode_faces(batch['faces'], batch['face_mask'], landmarks=batch.get('face_landmarks'),
                                           landmark_mask=batch.get('face_landmark_mask'))
    out = {'face_features': feats, 'local_tokens': local}
    if model.global_local is not None:
        frames = normalise(batch['frames'], batch['frame_mask'], xp=jnp)
        tokens, _ = model.frame_encoder(frames, batch.get('timestamp_ids'), batch.get('timestamp_mask'))
        out['global_local_change'] = model.global_local(tokens, local, local_mask) - tokens
    out['video_tokens'] = model.encode(batch)[0][:, :model.num_video_tokens]
    return out


def encode_videos(folder, data_dir: str, fn, clips: dict) -> dict[str, tuple[str, dict]]:
    """``fn`` (a batch -> dict of (B, ...) arrays, jitted here) on every clip of both splits of ``data_dir``: per video
    of ``clips``, its split and its arrays flattened (one record per video is enough: its targets share the media)."""
    run = jax.jit(fn)
    out = {}
    for split in ('train', 'validation'):
        it = pipeline.make_iterator(pipeline.open_split(data_dir, split), folder.cfg, train=False, num_workers=0,
                                    tokenizer=(folder.tokenizers or {}).get('llm'))
        for batch in it:
            arrays = run({k: v for k, v in batch.items() if k != 'names'})
            for i, name in enumerate(batch['names']):
                video = str(name).split('#')[0]
                if video and video in clips and video not in out:
                    out[video] = (split, {key: np.asarray(v[i], np.float32).ravel() for key, v in arrays.items()})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--params', required=True, help='a trained params folder')
    ap.add_argument('--data', required=True, help='the prepared demo corpus it trained on')
    ap.add_argument('--corpus', required=True, help="the raw corpus's corpus.json")
    ap.add_argument('--out', help='also write the figures to this JSON file')
    args = ap.parse_args(argv)
    folder = params_lib.load(args.params)
    if folder.model.micro_expression is None:
        sys.exit('error: this model has no micro-expression branch: nothing to probe')
    with open(args.corpus, encoding='utf-8') as f:
        clips = {c['name']: c for c in json.load(f)['clips']}
    per_video = {video: arrays for video, (_, arrays) in
                 encode_videos(folder, args.data, lambda batch: stages(folder.model, batch), clips).items()}
    result = {}
    for group, scenarios in GROUPS.items():
        videos = sorted(v for v in per_video if clips[v]['scenario'] in scenarios)
        if len(videos) < 8:
            continue
        y = np.array([clips[v]['emotion'] for v in videos])
        result[group] = {'clips': len(videos), 'chance': 1 / len(set(y)),
                         **{key: nearest_centroid_loo(np.stack([per_video[v][key] for v in videos]), y)
                            for key in per_video[videos[0]]}}
        print(f"{group} ({len(videos)} clips, chance {result[group]['chance']:.2f}): " + ', '.join(
            f"{key} {acc:.2f}" for key, acc in result[group].items() if key not in ('clips', 'chance')))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
