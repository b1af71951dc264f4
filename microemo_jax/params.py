"""The parameter folder: one directory that holds everything needed to run a trained model.

``train`` writes ``WORKDIR/params`` at the end of a run (``export_params`` + ``write_inference_files``);
``evaluate``, ``predict`` and ``serve`` need nothing else (``load``)::

    params/              Orbax PyTree of the model's nnx.Param state (``save_params``)
    model_config.json    the ``model`` section (``save_params``)
    sources.json         from ``convert``: which Hugging Face checkpoint each tower came from
    config.json          the whole run config: data shapes, sampling, question, stage, seed
    tokenizers/llm/      the tokenizers the training data was prepared with (copied, so the folder
    tokenizers/qformer/  keeps working when the prepared data is moved or deleted)
    training.json        where the data came from and what the run did (shown by ``serve``)

Every folder is stamped with ``checksums.json`` (``microemo_jax/checksums.py``: the SHA-256 of every file,
Orbax's data files included) when it is written, and ``load``, ``load_params`` and ``restore_params`` verify
every file before reading any: a damaged folder is refused, naming the file; one written before checksums
were kept loads with a one-line warning (``verify_folder``).

A ``convert`` output has only the first three; it can start training (``init.params``: ``load_params``
restores it by parameter name onto the run's shardings) but cannot explain a video, and ``load`` says
so instead of failing later.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from microemo_jax import checksums
from microemo_jax.config import ConfigError, validate
from microemo_jax.data.prepared import NotPrepared, dataset_tokenizers, read_report, tokenizer_dirs
from microemo_jax.data.tokenizer_identity import check_same, identities
from microemo_jax.data.tokenizers import copy_tokenizer, load_tokenizer
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.safe_paths import inside
from microemo_jax.sharding import state_shardings
from microemo_jax.table_keys import load_json
from microemo_jax.training.orbax_reads import is_mismatch, read_quietly, short
from microemo_jax.training.stages import uses_lora

CONFIG_FILE = 'config.json'
TRAINING_FILE = 'training.json'
TOKENIZER_DIRS = {'llm': os.path.join('tokenizers', 'llm'), 'qformer': os.path.join('tokenizers', 'qformer')}


class ParamsFolderError(ValueError):
    """A folder is not a usable parameter folder; the message names the folder and what is missing."""


class ParamsUnreadable(ParamsFolderError):
    """A parameter folder exists but its weights cannot be read (truncated or damaged files)."""


def _unreadable(path: str, error: BaseException) -> ParamsUnreadable:
    """One clear error for a damaged parameter folder (instead of Orbax's wall of per-array tracebacks)."""
    return ParamsUnreadable(f"{path}: the parameter checkpoint cannot be read; a file in it is truncated or "
                            f"damaged ({short(error)}). Copy or export it again "
                            f"(`python -m microemo_jax.convert`, or the run's WORKDIR/params).")


def _sharded(abstract, shardings):
    """``abstract`` (a tree of arrays or ShapeDtypeStructs) as ShapeDtypeStructs placed on ``shardings``."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


_UNSTAMPED_WARNED: set[str] = set()


def verify_folder(path: str) -> None:
    """Check every file of a parameter folder against its ``checksums.json`` before anything reads it.

    Raises ``ParamsUnreadable`` naming the damaged file; a folder without checksums (written before they were
    kept) gets a one-line warning on stderr (once per folder) that says how to stamp it.
    """
    path = os.path.abspath(path)
    try:
        verified = checksums.verify(path)
    except checksums.ChecksumError as e:
        raise _unreadable(path, e) from None
    if not verified and path not in _UNSTAMPED_WARNED:
        _UNSTAMPED_WARNED.add(path)
        print(f"warning: {path} has no {checksums.MANIFEST} (written before checksums were kept), so its files are "
              f"not verified; once it is known good, stamp it: python -c \"from microemo_jax.checksums import "
              f"stamp; stamp('{path}')\"", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the weights
def save_params(path: str, model: nnx.Module, model_config, extra: dict | None = None, *, stamp: bool = True) -> None:
    """Write ``params/`` and ``model_config.json`` (and ``extra`` as ``sources.json``); collective.

    ``stamp``: write ``checksums.json`` (process 0); ``export_params`` leaves it to ``write_inference_files``,
    which adds the last files, so the weights are hashed once.
    """
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    state = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as ckptr:  # returns once every host's files are committed
        ckptr.save(os.path.join(path, 'params'), state, force=True)
        ckptr.wait_until_finished()
    if jax.process_index() != 0:  # one writer: the checksums must not hash a file another host is rewriting
        return
    with open(os.path.join(path, 'model_config.json'), 'w') as f:
        f.write(model_config.to_json_best_effort(indent=2))
    if extra:
        with open(os.path.join(path, 'sources.json'), 'w') as f:
            json.dump(extra, f, indent=2)
    if stamp:
        checksums.stamp(path)


def export_params(path: str, cfg, graphdef: nnx.GraphDef, state, frozen: nnx.State, *, stamp: bool = True) -> None:
    """``save_params`` of a run's whole model (``training.state``: trained ``state.params`` + ``frozen``).

    Collective (all hosts call it). This is what ``init.params`` of a stage-2 run, ``evaluate`` and
    ``predict`` read. ``train`` passes ``stamp=False`` and stamps in ``write_inference_files``.
    """
    model = nnx.merge(graphdef, state.params, frozen)
    save_params(path, model, cfg.model, extra={'exported_from_step': int(jax.device_get(state.step))}, stamp=stamp)


def restore_params(path: str, model: nnx.Module, shardings=None) -> nnx.Module:
    """Fill ``model``'s parameters from ``path`` (shapes must match; raises naming the first mismatch)."""
    path = os.path.abspath(path)
    params_dir = os.path.join(path, 'params')
    if not os.path.isdir(params_dir):
        raise FileNotFoundError(f"{path} is not a microemo-jax parameter checkpoint (no params/ folder)")
    verify_folder(path)
    target = nnx.state(model, nnx.Param)
    abstract = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), target)
    if shardings is not None:
        abstract = _sharded(abstract, shardings)
    with ocp.StandardCheckpointer() as ckptr:
        restored, error = read_quietly(ckptr.restore, params_dir, abstract)
    if error is not None:
        if is_mismatch(error):
            raise ValueError(f"{path}: checkpoint does not fit the model built from this config: {error}")
        raise _unreadable(path, error)
    nnx.update(model, restored)
    return model


def load_params(path: str, wanted: dict[str, jax.ShapeDtypeStruct]) -> dict[str, jax.Array]:
    """Restore a parameter folder by name onto the given shardings: {parameter name: array}.

    ``wanted`` is {name: sharded ShapeDtypeStruct} of every parameter of the model to start
    (``training.state.model_params``); names are the '/'-joined paths (``training.state.path_name``).
    Raises (before any step compiles) if a parameter's shape differs or the folder holds parameters
    this model does not have (e.g. LoRA adapters into a stage-1 model): nothing is dropped silently.
    Parameters the folder lacks are simply not returned (they keep their fresh init).
    """
    path = os.path.abspath(path)
    params_dir = os.path.join(path, 'params')
    if not os.path.isdir(params_dir):
        raise FileNotFoundError(f"init.params={path!r} is not a microemo-jax parameter checkpoint (no params/ "
                                f"folder); make one with `python -m microemo_jax.convert` or export_params")
    verify_folder(path)
    with ocp.StandardCheckpointer() as ckptr:
        meta, error = read_quietly(ckptr.metadata, params_dir)
        if error is not None:  # a damaged _METADATA or manifest
            raise _unreadable(path, error)
        saved = meta.item_metadata.tree
        flat = {}
        for keys, meta in jax.tree_util.tree_flatten_with_path(saved)[0]:
            names = [str(_key(k)) for k in keys]
            if names and names[-1] == 'value':
                names = names[:-1]
            flat['/'.join(names)] = (keys, meta)
        extra = sorted(set(flat) - set(wanted))
        if extra:
            raise ValueError(f"{path}: the checkpoint holds {len(extra)} parameters this model lacks "
                             f"(first: {extra[:3]}); check model.* and stage (LoRA adapters need stage=2 or 3)")
        bad = [f"{name}: checkpoint {tuple(meta.shape)} vs model {wanted[name].shape}"
               for name, (_, meta) in flat.items() if tuple(meta.shape) != wanted[name].shape]
        if bad:
            raise ValueError(f"{path}: {len(bad)} parameter shapes do not match the model built from this config:"
                             "\n  " + "\n  ".join(bad[:10]))
        target = _nested_target(saved, {name: wanted[name] for name in flat}, flat)
        restored, error = read_quietly(ckptr.restore, params_dir, target)
        if error is not None:  # names and shapes were checked above: this is a damaged file
            raise _unreadable(path, error)
    return {name: _get(restored, keys) for name, (keys, _) in flat.items()}


def _key(k):
    return getattr(k, 'key', getattr(k, 'name', k))


def _nested_target(saved, wanted: dict, flat: dict):
    """A copy of the checkpoint's nested-dict tree with sharded ShapeDtypeStructs as leaves."""
    leaves = {tuple(_key(k) for k in keys): wanted[name] for name, (keys, _) in flat.items()}

    def build(node, prefix):
        if isinstance(node, dict):
            return {k: build(v, prefix + (k,)) for k, v in node.items()}
        return leaves[prefix]
    return build(saved, ())


def _get(tree, keys):
    for k in keys:
        tree = tree[_key(k)]
    return tree


# ------------------------------------------------------------------------- config, tokenizers, provenance


def write_inference_files(path: str, cfg, data_dir: str, *, extra: dict | None = None,
                          expected: dict | None = None) -> None:
    """Add config, tokenizers and provenance to an exported parameter folder, then stamp it (process 0 only).

    The tokenizers are the ones ``prepare`` recorded in ``DATA/prepare_report.json``: the token ids the
    model learned are only meaningful with them. They replace the folder's (no stale file stays), but only
    when their identity is the one the report records and, if given, ``expected`` (the identity the run
    trained on): otherwise ``TokenizerMismatch`` and nothing is written. ``training.json`` records it.
    """
    try:
        report_path, report = read_report(data_dir)
        sources = tokenizer_dirs(data_dir)
        recorded = dataset_tokenizers(data_dir)
    except NotPrepared as e:
        raise ParamsFolderError(f"{e}; cannot tell which tokenizers prepared the training data, so the parameter "
                                f"folder {path} would not be usable by evaluate/predict") from e
    found = identities(sources['llm'], sources['qformer'])
    check_same(recorded, found, report_path, f"the tokenizer folders it names ({sources['llm']}, {sources['qformer']})",
               hint='the tokenizers were replaced after the data was prepared: prepare the data again')
    check_same(expected, found, 'the weights this run trained (WORKDIR/tokenizers.json)', report_path,
               hint='the data was prepared again with other tokenizers while the run trained')
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, CONFIG_FILE), 'w') as f:
        f.write(cfg.to_json_best_effort(indent=2))
    for key, rel in TOKENIZER_DIRS.items():
        dst = inside(path, *rel.split(os.sep))   # a link planted there leading out is refused (safe_paths)
        if os.path.abspath(sources[key]) != os.path.abspath(dst):
            shutil.rmtree(dst, ignore_errors=True)
            copy_tokenizer(sources[key], dst)  # its tokenizer files only: an LLM checkpoint folder keeps its weights
    copied = identities(*(os.path.join(path, TOKENIZER_DIRS[k]) for k in ('llm', 'qformer')))
    check_same(found, copied, report_path, f"the copy in {path}", hint='they changed while being copied: export again')
    info = {'data_dir': os.path.abspath(data_dir), 'source': report.get('source'), 'raw': report.get('raw'),
            'splits': report.get('splits'), 'variant': cfg.get('variant'), 'stage': cfg.get('stage'),
            'tokenizers': copied, **(extra or {})}
    with open(os.path.join(path, TRAINING_FILE), 'w') as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
    checksums.stamp(path)  # last: the folder is complete


def folder_tokenizers(path: str) -> dict | None:
    """The identity of a parameter folder's tokenizers (None for a weights-only folder, which has none), checked
    against what ``training.json`` recorded when the folder was written: tokenizers swapped in afterwards would
    turn the model's answers into gibberish, so they are refused (``TokenizerMismatch``)."""
    dirs = [os.path.join(path, TOKENIZER_DIRS[k]) for k in ('llm', 'qformer')]
    if not all(os.path.isdir(d) for d in dirs):
        return None
    found = identities(*dirs)
    check_same(training_info(path).get('tokenizers'), found, f"the weights of {path} ({TRAINING_FILE})",
               f"the tokenizers in {os.path.join(path, 'tokenizers')}",
               hint='the tokenizers were replaced after training: restore them, or export the folder again')
    return found


def _tuples(x):
    """JSON gives lists where the config had tuples (sharding rules, LoRA targets); configs hold no lists."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def load_config(path: str) -> ml_collections.ConfigDict:
    """The run config stored in a parameter folder, validated and locked."""
    check_folder(path)
    file = os.path.join(path, CONFIG_FILE)
    try:
        raw = load_json(file)  # a key given twice is refused
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
    return (load_tokenizer(os.path.join(path, TOKENIZER_DIRS['llm']), what='LLM'),
            load_tokenizer(os.path.join(path, TOKENIZER_DIRS['qformer']), what='Q-Former'))


def training_info(path: str) -> dict:
    """What ``train`` recorded about the run (empty when absent)."""
    try:
        with open(os.path.join(path, TRAINING_FILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def load_model(path: str, cfg, *, mesh=None):
    """The MicroEmo of a parameter folder, built abstractly and restored straight onto ``mesh`` (if any).

    Nothing is initialised first: at paper scale a random init of 7B parameters would cost minutes.
    """
    params_dir = os.path.join(os.path.abspath(path), 'params')
    abstract_model = nnx.eval_shape(lambda: MicroEmo(cfg.model, use_lora=uses_lora(cfg.stage), rngs=nnx.Rngs(0)))
    graphdef, abstract, rest = nnx.split(abstract_model, nnx.Param, ...)
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # not the saver's devices: it may be elsewhere
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=here), abstract)
    if mesh is not None:
        target = _sharded(target, state_shardings(abstract, mesh, cfg.sharding_rules))
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
    tokenizers: dict | None = None   # their identity (``folder_tokenizers``)

    @property
    def info(self) -> dict:
        return training_info(self.path)


def load(path: str, *, mesh=None) -> ParamsFolder:
    """A parameter folder, every file verified against its checksums first (``verify_folder``)."""
    path = os.path.abspath(os.path.expanduser(path))
    check_folder(path)
    verify_folder(path)
    cfg = load_config(path)
    ids = folder_tokenizers(path)
    llm_tok, qf_tok = load_tokenizers(path)
    return ParamsFolder(path, cfg, load_model(path, cfg, mesh=mesh), llm_tok, qf_tok, ids)
