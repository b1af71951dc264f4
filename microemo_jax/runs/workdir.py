"""What a training run holds while it runs: its workdir (one run at a time, ``.lock``), its data folder
(the demo's made on first use) and the tokenizers its weights learned (``WORKDIR/tokenizers.json``)."""
from __future__ import annotations

import contextlib
import json
import os

import jax
from jax.experimental import multihost_utils

from microemo_jax.data.prepared import NotPrepared, dataset_tokenizers, find_prepare_report
from microemo_jax.data.tokenizer_identity import check_same
from microemo_jax.demo.first_use import demo_paths, ensure_demo_data
from microemo_jax.lock import DirLock, LockHeld
from microemo_jax.params import folder_tokenizers
from microemo_jax.runs.face_encoder import ensure_face_encoder, face_encoder_path
from microemo_jax.training import distributed


class TrainError(RuntimeError):
    """A run cannot start or must stop; the message says why (and what was kept)."""


def resolve_data_dir(cfg) -> str:
    if cfg.data.dir:
        return os.path.expanduser(cfg.data.dir)
    if cfg.variant not in ('demo', 'demo_qwen3'):  # the demo variants make their data on first use
        raise TrainError("set --config.data.dir to a dataset made by `python -m microemo_jax.prepare`")
    if jax.process_index() == 0:
        path = ensure_demo_data(cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('demo data prepared')
    return demo_paths(cfg)[1] if jax.process_index() else path


def resolve_face_encoder(cfg) -> str:
    """The folder of ``init.face_encoder``: 'demo' is pretrained on first use (by process 0) under demo_cache."""
    source = cfg.init.face_encoder
    if source != 'demo':
        path = os.path.expanduser(source)
        if not os.path.isdir(os.path.join(path, 'params')):
            raise TrainError(f"init.face_encoder={source!r} is not a face-encoder folder (no params/ in it): write "
                             f"one with `python -m microemo_jax.runs.face_encoder OUT`, or use 'demo' or ''")
        return path
    if jax.process_index() == 0:
        ensure_face_encoder(cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('demo face encoder pretrained')
    return face_encoder_path(cfg)


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Hold ``workdir/.lock`` (``lock.DirLock``) for the run; raises ``LockHeld`` naming the holder.

    With several processes (one run over hosts sharing the workdir) process 0 holds it for all of them
    and tells the others whether it got it.
    """
    lock = DirLock(workdir, 'train workdir') if jax.process_index() == 0 else None
    refused = None
    if lock is not None:
        try:
            lock.acquire()
        except LockHeld as e:
            refused = e
    verdict = distributed.share_from_first('microemo: train workdir lock', str(refused) if refused else 'ok')
    if refused is not None:
        raise refused
    if verdict != 'ok':
        raise TrainError(f"process 0 could not lock the workdir: {verdict}")
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


RUN_TOKENIZERS = 'tokenizers.json'


def check_tokenizers(cfg, workdir: str, data_dir: str, resuming: bool) -> dict:
    """The identity of the data's tokenizers, refused (``TokenizerMismatch``) unless it is the one the run's weights
    learned: the checkpoints' (``WORKDIR/tokenizers.json``, when resuming) and ``init.params``'s (when it has
    tokenizers; a ``convert`` output has none). A fresh run records it. Called before anything compiles.

    Without this a re-prepared dataset (one label edited: the demo's tokenizers are trained on the corpus text)
    would resume a run on other token ids, and a finished run's re-export would put the new tokenizers beside
    the old weights."""
    try:
        report = find_prepare_report(data_dir)
        ids = dataset_tokenizers(data_dir)
    except NotPrepared as e:
        raise TrainError(f"{e}: train needs the prepared dataset's report (which tokenizers made its token ids)") from None
    data_what = f"the dataset {data_dir} ({report})"
    if cfg.init.params:
        check_same(folder_tokenizers(cfg.init.params), ids, f"init.params={cfg.init.params}", data_what,
                   hint='prepare the data with the tokenizers of init.params (prepare --tokenizer '
                        'INIT/tokenizers/llm --qformer-tokenizer INIT/tokenizers/qformer)')
    path = os.path.join(workdir, RUN_TOKENIZERS)
    recorded = None
    if resuming and os.path.isfile(path):
        try:
            with open(path) as f:
                recorded = json.load(f)['tokenizers']
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TrainError(f"{path}: cannot be read ({e}); it records which tokenizers the checkpoints in "
                             f"{workdir} learned") from None
        check_same(recorded, ids, f"the checkpoints in {workdir} ({path})", data_what,
                   hint='resume on data prepared with the run\'s tokenizers, or use a new --workdir')
    elif resuming:
        print(f"warning: {workdir} has checkpoints but no {RUN_TOKENIZERS} (written before tokenizer identities were "
              f"kept): assuming they learned {data_what}'s tokenizers", flush=True)
    if recorded is None and jax.process_index() == 0:
        with open(path, 'w') as f:
            json.dump({'tokenizers': ids, 'data_dir': os.path.abspath(data_dir)}, f, indent=2)
    return ids
