"""The demo's data, made on first use: generate the embedded demo corpus, then prepare it.

``configs/emer.py:demo`` leaves ``data.dir`` empty; training then looks for a prepared copy under
``data.demo_cache`` whose name carries a hash of every setting that shapes the records, so changing
e.g. ``model.num_frames`` prepares a matching copy instead of failing on a stale one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from microemo_jax.data.records.build import prepare
from microemo_jax.data.records.tfds_builder import SHARD_FORMAT, dataset_dir
from microemo_jax.data.shapes import DataShapes
from microemo_jax.demo import corpus as demo_corpus


def _fingerprint(cfg) -> str:
    m, d = cfg.model, cfg.data
    relevant = dict(shapes=dataclasses.asdict(DataShapes.from_config(cfg)), sampling=d.sampling,
                    question=d.question, faces=d.require_faces, jpeg=d.jpeg_quality, val=d.validation_fraction,
                    vocab=(m.llm.vocab_size, m.image_qformer.vocab_size), clips=d.demo_clips, seed=d.demo_seed,
                    split='by_video',  # copies made with the old per-record split are not reused
                    corpus=demo_corpus.GENERATOR_VERSION, detector=d.get('face_detector', 'blazeface'),
                    align=bool(d.get('align_faces', True)), tubelets=m.micro_expression.get('tubelets', 'anchor'),
                    format=SHARD_FORMAT)
    if d.get('demo_tokenizer', 'llama') != 'llama':  # (the LLaMA-style copies keep their names)
        relevant['tokenizer'] = d.demo_tokenizer
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def demo_paths(cfg) -> tuple[str, str]:
    """(raw corpus folder, prepared dataset folder) for the demo config. Both names change with what made
    them: the raw corpus with the generator's version and the global frame count its micro-expressions
    avoid, the prepared copy with every setting that shapes its records, so a stale copy is never reused."""
    root, d = os.path.expanduser(cfg.data.demo_cache), cfg.data
    raw = f'raw-v{demo_corpus.GENERATOR_VERSION}-{d.demo_clips}-seed{d.demo_seed}-t{cfg.model.num_frames}'
    return os.path.join(root, raw), os.path.join(root, f'prepared-{_fingerprint(cfg)}')


def ensure_demo_data(cfg, *, workers: int | None = None) -> str:
    """Prepared demo dataset folder, generating and preparing the corpus first if needed (with progress)."""
    raw, prepared = demo_paths(cfg)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    if os.path.isfile(os.path.join(dataset_dir(prepared), 'dataset_info.json')):
        return prepared
    if not os.path.isfile(os.path.join(raw, 'corpus.json')):
        print(f'generating the demo corpus ({cfg.data.demo_clips} clips) in {raw}', flush=True)
        demo_corpus.write_corpus(raw, cfg.data.demo_clips, seed=cfg.data.demo_seed, workers=workers,
                                 global_frames=cfg.model.num_frames)
    print(f'preparing it into {prepared}', flush=True)
    report = prepare(cfg, 'folder', raw, prepared, workers=workers)
    print(f"prepared {report['written']} records ({report['skipped']} skipped: {report['skipped_by_reason']})",
          flush=True)
    return prepared
