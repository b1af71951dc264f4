"""The parameter folder: one directory that holds everything needed to run a trained model.

``train`` writes ``WORKDIR/params`` at the end of a run; ``evaluate``, ``predict`` and ``serve`` need
nothing else::

    params/              Orbax PyTree of the model's nnx.Param state (``checkpoint.save_params``)
    model_config.json    the ``model`` section (``checkpoint.save_params``)
    config.json          the whole run config: data shapes, sampling, question, stage, seed
    tokenizers/llm/      the tokenizers the training data was prepared with (copied, so the folder
    tokenizers/qformer/  keeps working when the prepared data is moved or deleted)
    training.json        where the data came from and what the run did (shown by ``serve``)

A ``convert`` output has only the first two; it can start training but cannot explain a video, and
``load`` says so instead of failing later.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import ml_collections

CONFIG_FILE = 'config.json'
TRAINING_FILE = 'training.json'
TOKENIZER_DIRS = {'llm': os.path.join('tokenizers', 'llm'), 'qformer': os.path.join('tokenizers', 'qformer')}


class ParamsFolderError(ValueError):
    """A folder is not a usable parameter folder; the message names the folder and what is missing."""


def write_inference_files(path: str, cfg, data_dir: str, *, extra: dict | None = None) -> None:
    """Add config, tokenizers and provenance to an exported parameter folder (process 0 only).

    The tokenizers are the ones ``prepare`` recorded in ``DATA/prepare_report.json``: the token ids the
    model learned are only meaningful with them.
    """
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, CONFIG_FILE), 'w') as f:
        f.write(cfg.to_json_best_effort(indent=2))
    report_path = find_prepare_report(data_dir)
    try:
        with open(report_path) as f:
            report = json.load(f)
        tokenizers = report['tokenizers']
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ParamsFolderError(f"{report_path}: cannot tell which tokenizers prepared the training data ({e}); "
                                f"the parameter folder {path} would not be usable by evaluate/predict") from e
    for key, rel in TOKENIZER_DIRS.items():
        src = _existing_dir(tokenizers[key], os.path.dirname(report_path))
        dst = os.path.join(path, rel)
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copytree(src, dst, dirs_exist_ok=True)
    info = {'data_dir': os.path.abspath(data_dir), 'source': report.get('source'), 'raw': report.get('raw'),
            'splits': report.get('splits'), 'variant': cfg.get('variant'), 'stage': cfg.get('stage'),
            **(extra or {})}
    with open(os.path.join(path, TRAINING_FILE), 'w') as f:
        json.dump(info, f, indent=2, ensure_ascii=False)


def find_prepare_report(data_dir: str) -> str:
    """``prepare_report.json`` of a prepared dataset, given its ``--out`` folder or the TFDS folder inside it."""
    here = os.path.abspath(data_dir)
    for _ in range(4):  # OUT, or OUT/tfds/NAME/VERSION
        if os.path.isfile(os.path.join(here, 'prepare_report.json')):
            return os.path.join(here, 'prepare_report.json')
        here = os.path.dirname(here)
    raise ParamsFolderError(f"{data_dir}: no prepare_report.json in it or above it; was it made by "
                            f"`python -m microemo_jax.prepare`?")


def _existing_dir(recorded: str, out: str) -> str:
    """A tokenizer folder recorded by prepare (possibly relative to where prepare ran)."""
    for candidate in (recorded, os.path.join(os.path.dirname(out), recorded),
                      os.path.join(out, 'tokenizers', os.path.basename(recorded))):
        if os.path.isdir(candidate):
            return candidate
    raise ParamsFolderError(f"the tokenizer folder {recorded!r} recorded in {out}/prepare_report.json is gone")


def _tuples(x):
    """JSON gives lists where the config had tuples (sharding rules, LoRA targets); configs hold no lists."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def load_config(path: str) -> ml_collections.ConfigDict:
    """The run config stored in a parameter folder, validated and locked."""
    from microemo_jax.config import ConfigError, validate
    check_folder(path)
    file = os.path.join(path, CONFIG_FILE)
    try:
        with open(file) as f:
            raw = json.load(f)
    except ValueError as e:
        raise ParamsFolderError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ParamsFolderError(f"{file} must hold a JSON object (the run config)")
    cfg = ml_collections.ConfigDict(_tuples(raw))
    try:
        validate(cfg)
    except ConfigError as e:
        raise ParamsFolderError(f"{file}: {e}") from e
    cfg.lock()
    return cfg


def check_folder(path: str) -> None:
    """Raise ``ParamsFolderError`` unless ``path`` holds weights, the run config and the tokenizers."""
    if not os.path.isdir(path):
        raise ParamsFolderError(f"--params {path}: no such folder")
    if not os.path.isdir(os.path.join(path, 'params')):
        raise ParamsFolderError(f"--params {path} is not a microemo-jax parameter folder (no params/ inside); "
                                f"use the WORKDIR/params folder that `python -m microemo_jax.train` writes")
    missing = [name for name in (CONFIG_FILE, *TOKENIZER_DIRS.values()) if not os.path.exists(os.path.join(path, name))]
    if missing:
        raise ParamsFolderError(f"--params {path} lacks {', '.join(missing)}: it holds weights only (a `convert` "
                                f"output or an older export), so it cannot tokenize prompts; train from it, or "
                                f"use a WORKDIR/params folder written by `python -m microemo_jax.train`")


def load_tokenizers(path: str):
    """(LLM tokenizer, Q-Former tokenizer) of a parameter folder."""
    from microemo_jax.data.tokenizers import load_tokenizer
    return (load_tokenizer(os.path.join(path, TOKENIZER_DIRS['llm']), what='LLM'),
            load_tokenizer(os.path.join(path, TOKENIZER_DIRS['qformer']), what='Q-Former'))


def training_info(path: str) -> dict:
    """What ``train`` recorded about the run (empty when absent)."""
    try:
        with open(os.path.join(path, TRAINING_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def load_model(path: str, cfg, *, mesh=None):
    """The MicroEmo of a parameter folder, built abstractly and restored straight onto ``mesh`` (if any).

    Nothing is initialised first: at paper scale a random init of 7B parameters would cost minutes.
    """
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from microemo_jax.models.microemo import MicroEmo
    params_dir = os.path.join(os.path.abspath(path), 'params')
    abstract_model = nnx.eval_shape(lambda: MicroEmo(cfg.model, use_lora=cfg.stage == 2, rngs=nnx.Rngs(0)))
    graphdef, abstract, rest = nnx.split(abstract_model, nnx.Param, ...)
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # not the saver's devices: it may be elsewhere
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=here), abstract)
    if mesh is not None:
        from microemo_jax.sharding import state_shardings
        shardings = state_shardings(abstract, mesh, cfg.sharding_rules)
        target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), target, shardings)
    options = {}
    if mesh is None and jax.process_count() > 1:
        # Without a mesh each process keeps its own copy (data-parallel evaluate): restore alone, with no
        # cross-process barrier (the processes do not reach this point together).
        me = jax.process_index()
        options['multiprocessing_options'] = ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}, barrier_sync_key_prefix=f'microemo-params-{me}')
    with ocp.StandardCheckpointer(**options) as ckptr:
        try:
            restored = ckptr.restore(params_dir, target)
        except Exception as e:  # Orbax raises many types for damaged or mismatched folders
            first = str(e).strip().splitlines()[0] if str(e).strip() else ''
            raise ParamsFolderError(f"{path}: the weights in params/ could not be restored for the model its "
                                    f"config.json describes ({type(e).__name__}: {first[:300]})") from None
    return nnx.merge(graphdef, restored, rest)


@dataclasses.dataclass
class ParamsFolder:
    """A loaded parameter folder: config, model and tokenizers."""
    path: str
    cfg: ml_collections.ConfigDict
    model: object
    llm_tokenizer: object
    qformer_tokenizer: object

    @property
    def info(self) -> dict:
        return training_info(self.path)


def load(path: str, *, mesh=None) -> ParamsFolder:
    path = os.path.abspath(os.path.expanduser(path))
    cfg = load_config(path)
    llm_tok, qf_tok = load_tokenizers(path)
    return ParamsFolder(path, cfg, load_model(path, cfg, mesh=mesh), llm_tok, qf_tok)
