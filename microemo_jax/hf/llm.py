"""Hugging Face causal-LM checkpoints (LLaMA, Qwen2/2.5, Qwen3) <-> ``microemo_jax.models.llama.Llama``.

    model = load_llm(path)          # config.json's model_type picks the family (hf/llm_config.py)
    save_llm(model, out)            # a folder transformers' AutoModelForCausalLM loads, LoRA merged

Loading needs only config.json and the safetensors (one file, or shards with their index); it reads no
tokenizer files. The model is built abstractly (no random init of billions of weights) and every parameter is
filled from the checkpoint, in float32 unless asked otherwise; only LoRA adapters are initialised. Export merges
LoRA into the kernels it writes (the caller's module is untouched) and writes transformers' tensor names and the
config of the family that computes the same function (``llm_config.family_of``).
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.hf.llm_config import FAMILIES, llm_config_from_hf, llm_config_to_hf
from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint, assign, stack
from microemo_jax.models.layers import Dense
from microemo_jax.models.llama import Llama, LlamaConfig

_BLOCK_DENSES = ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
                 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj')
_BLOCK_NORMS = ('input_layernorm', 'post_attention_layernorm')
_QK_NORMS = ('self_attn.q_norm', 'self_attn.k_norm')
_IGNORED_SUFFIXES = ('.rotary_emb.inv_freq',)  # non-persistent buffers some old checkpoints still hold
_EXPORT_DTYPES = {'float32': np.float32, 'float16': np.float16, 'bfloat16': jnp.bfloat16}


def _get(module, path: str):
    for part in path.split('.'):
        module = getattr(module, part)
    return module


_TOP_LEVEL = ('embed_tokens', 'norm', 'lm_head')


def _is_top(ours: str) -> bool:
    """Whether an attribute path lives on the model itself rather than inside a decoder block."""
    return ours.split('.')[0] in _TOP_LEVEL


def _expected_tensors(cfg: LlamaConfig) -> list[tuple[str, str, bool]]:
    """(our attribute path, transformers name, transpose?) for every tensor; block tensors are given
    relative to a block and to ``model.layers.{i}.``. Kernels are stored (in, out), torch weights (out, in)."""
    out = [('embed_tokens.embedding', 'model.embed_tokens.weight', False), ('norm.scale', 'model.norm.weight', False)]
    if not cfg.tie_word_embeddings:
        out.append(('lm_head.kernel', 'lm_head.weight', True))
    for d in _BLOCK_DENSES:
        out.append((f'{d}.kernel', f'{d}.weight', True))
        if _has_bias(cfg, d):
            out.append((f'{d}.bias', f'{d}.bias', False))
    out += [(f'{n}.scale', f'{n}.weight', False) for n in _BLOCK_NORMS + (_QK_NORMS if cfg.qk_norm else ())]
    return out


def _has_bias(cfg: LlamaConfig, dense: str) -> bool:
    if dense == 'self_attn.o_proj':
        return cfg.attention_bias
    return cfg.q_bias if dense.startswith('self_attn') else cfg.mlp_bias


def _hf_names(cfg: LlamaConfig) -> list[str]:
    names = []
    for ours, hf, _ in _expected_tensors(cfg):
        if _is_top(ours):
            names.append(hf)
        else:
            names += [f'model.layers.{i}.{hf}' for i in range(cfg.num_layers)]
    return names


def load_llm(path, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False, lora=None,
             lora_targets=('q_proj', 'k_proj', 'v_proj', 'o_proj'), lora_seed: int = 0,
             model_types=tuple(FAMILIES), **kwargs) -> Llama:
    """Build a Llama from a transformers LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM folder.
    ``kwargs`` go to ``Llama`` (e.g. remat_policy, attention_impl); ``lora_seed`` draws the LoRA A matrices
    (B starts at zero); ``model_types`` narrows the families accepted."""
    ckpt = HFCheckpoint(path)
    hf, where = ckpt.config, os.path.join(ckpt.path, 'config.json')
    if hf.get('model_type') not in model_types:
        raise CheckpointError(f"{where}: model_type {hf.get('model_type')!r} is not supported here; "
                              f"{' / '.join(FAMILIES[t][0] for t in model_types)} needs one of {sorted(model_types)}")
    cfg = llm_config_from_hf(hf, where=where)

    def build():
        return Llama(cfg, dtype=dtype, param_dtype=param_dtype, scan=scan, lora=lora, lora_targets=lora_targets,
                     rngs=nnx.Rngs(lora_seed), **kwargs)
    model = nnx.eval_shape(build)
    if lora is not None:  # only the adapters need drawing; jit drops the unused base-weight init
        nnx.update(model, jax.jit(lambda: nnx.state(build(), nnx.LoRAParam))())

    expected = set(_hf_names(cfg))
    unexpected = [n for n in ckpt.names() if n not in expected and not n.endswith(_IGNORED_SUFFIXES)
                  and not (cfg.tie_word_embeddings and n == 'lm_head.weight')]
    if unexpected:
        arch = FAMILIES[hf['model_type']][0]
        raise CheckpointError(f"{ckpt.path}: tensors not used by a {cfg.num_layers}-layer {arch}: "
                              f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")

    def read(var, hf_name: str, transpose: bool) -> np.ndarray:
        shape = tuple(var.get_value().shape)
        if scan and hf_name.startswith('model.layers.'):
            shape = shape[1:]
        arr = ckpt.get(hf_name, shape[::-1] if transpose else shape)
        return arr.T if transpose else arr

    blocks = model.layers.blocks
    for ours, hf_name, transpose in _expected_tensors(cfg):
        if _is_top(ours):
            var = _get(model, ours)
            assign(var, read(var, hf_name, transpose), where=f'{ckpt.path}: {hf_name}')
        elif scan:
            var = _get(blocks, ours)
            arrays = [read(var, f'model.layers.{i}.{hf_name}', transpose) for i in range(cfg.num_layers)]
            assign(var, stack(arrays), where=f'{ckpt.path}: model.layers.*.{hf_name}')
        else:
            for i in range(cfg.num_layers):
                var = _get(blocks[i], ours)
                name = f'model.layers.{i}.{hf_name}'
                assign(var, read(var, name, transpose), where=f'{ckpt.path}: {name}')
    _check_all_loaded(model, ckpt.path)
    return model


def _check_all_loaded(model: Llama, where: str) -> None:
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Variable) and isinstance(node.get_value(), jax.ShapeDtypeStruct):
            raise CheckpointError(f"{where}: parameter {'.'.join(map(str, path))} was not filled from the checkpoint")


def _merged_kernel(dense: Dense, layer: int | None) -> np.ndarray:
    """(in, out) kernel of ``dense`` (one layer of a scanned stack) with its LoRA delta added in float32."""
    kernel = dense.kernel[...] if layer is None else dense.kernel[...][layer]
    kernel = jnp.asarray(kernel, jnp.float32)
    if dense.lora is not None:
        a, b = dense.lora.a[...], dense.lora.b[...]
        if layer is not None:
            a, b = a[layer], b[layer]
        kernel = kernel + (a @ b) * dense.lora.cfg.scale
    return np.asarray(kernel)


def _tensor_plan(module: Llama) -> dict[str, tuple[tuple[int, ...], object]]:
    """transformers name -> (shape, function giving the float32 array with LoRA merged); lazy so that
    export holds one shard at a time."""
    cfg, scan = module.cfg, module.layers.scan
    plan = {}
    for ours, hf_name, transpose in _expected_tensors(cfg):
        parent_path, leaf = ours.rsplit('.', 1)
        if _is_top(ours):
            owners = [(module, None, hf_name)]
        else:
            owners = [(module.layers.blocks if scan else module.layers.blocks[i], i if scan else None,
                       f'model.layers.{i}.{hf_name}') for i in range(cfg.num_layers)]
        for owner, layer, name in owners:
            parent = _get(owner, parent_path)

            def fetch(parent=parent, layer=layer, leaf=leaf, transpose=transpose):
                if leaf == 'kernel':
                    arr = _merged_kernel(parent, layer)
                else:
                    arr = np.asarray(getattr(parent, leaf)[...], np.float32)
                    arr = arr if layer is None else arr[layer]
                return arr.T if transpose else arr
            shape = tuple(getattr(parent, leaf).get_value().shape[0 if layer is None else 1:])
            plan[name] = (shape[::-1] if transpose else shape, fetch)
    return plan


def save_llm(module: Llama, path, *, dtype: str = 'float32', max_shard_bytes: int = 5 * 2 ** 30,
             extra_config: dict | None = None) -> None:
    """Write ``module`` as a transformers folder of its family (LlamaForCausalLM, Qwen2ForCausalLM or
    Qwen3ForCausalLM): config.json and safetensors (sharded, with an index, above ``max_shard_bytes``). LoRA
    is merged into the written kernels; ``module`` is not modified. ``extra_config`` adds config.json keys
    such as bos/eos token ids."""
    from safetensors.numpy import save_file
    if dtype not in _EXPORT_DTYPES:
        raise ValueError(f"export dtype {dtype!r} is not one of {sorted(_EXPORT_DTYPES)}")
    np_dtype = _EXPORT_DTYPES[dtype]
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    for fname in os.listdir(path):  # stale shards or an old index would shadow what we write
        if fname.startswith('model') and (fname.endswith('.safetensors') or fname == 'model.safetensors.index.json'):
            os.remove(os.path.join(path, fname))
    plan = _tensor_plan(module)
    itemsize = np.dtype(np_dtype).itemsize
    shards, size = [[]], 0
    for name in sorted(plan):
        nbytes = int(np.prod(plan[name][0])) * itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    files = ['model.safetensors'] if len(shards) == 1 else [
        f'model-{j + 1:05d}-of-{len(shards):05d}.safetensors' for j in range(len(shards))]
    for fname, names in zip(files, shards):
        tensors = {n: np.ascontiguousarray(plan[n][1]().astype(np_dtype)) for n in names}
        save_file(tensors, os.path.join(path, fname), metadata={'format': 'pt'})
    if len(shards) > 1:
        total = sum(int(np.prod(shape)) * itemsize for shape, _ in plan.values())
        index = {'metadata': {'total_size': total},
                 'weight_map': {n: f for f, names in zip(files, shards) for n in names}}
        with open(os.path.join(path, 'model.safetensors.index.json'), 'w') as f:
            json.dump(index, f, indent=2, sort_keys=True)
    config = {**llm_config_to_hf(module.cfg, dtype=dtype), **(extra_config or {})}
    with open(os.path.join(path, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
