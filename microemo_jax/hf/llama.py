"""Hugging Face ``LlamaForCausalLM`` checkpoints <-> ``microemo_jax.models.llama.Llama``.

Loading reads config.json in both spellings transformers has used: the current one (5.x writes a
``rope_parameters`` dict holding rope_theta and rope_type) and the older one (top-level ``rope_theta``
plus ``rope_scaling``, still found in Llama-2/3.x hub configs). Only ``model_type: llama`` is accepted.
The model is built abstractly (no random init of billions of weights) and every parameter is filled
from the checkpoint; only LoRA adapters are initialised. Export merges LoRA into the kernels it writes
(the caller's module is untouched) and writes transformers' tensor names, so
``LlamaForCausalLM.from_pretrained`` loads the folder.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint, assign, config_of, stack
from microemo_jax.models.layers import Dense
from microemo_jax.models.llama import LLAMA3_ROPE_KEYS, Llama, LlamaConfig

_BLOCK_DENSES = ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
                 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj')
_BLOCK_NORMS = ('input_layernorm', 'post_attention_layernorm')
_IGNORED_SUFFIXES = ('.rotary_emb.inv_freq',)  # non-persistent buffers some old checkpoints still hold
_EXPORT_DTYPES = {'float32': np.float32, 'float16': np.float16, 'bfloat16': jnp.bfloat16}


def llama_config_from_hf(hf: dict, *, where: str = 'config.json') -> LlamaConfig:
    """A LlamaConfig from a transformers LlamaConfig dict (either RoPE spelling)."""
    if hf.get('model_type') != 'llama':
        raise CheckpointError(f"{where}: model_type {hf.get('model_type')!r} is not 'llama' "
                              f"(only LlamaForCausalLM checkpoints are supported)")
    act = hf.get('hidden_act', 'silu')
    if act != 'silu':
        raise CheckpointError(f"{where}: hidden_act {act!r} is not supported (LLaMA uses 'silu')")
    try:
        heads = int(hf['num_attention_heads'])
        hidden = int(hf['hidden_size'])
        # transformers: rope_scaling (old spelling), when present and non-empty, takes priority
        rope = dict(hf.get('rope_scaling') or hf.get('rope_parameters') or {})
        theta = rope.get('rope_theta', hf.get('rope_theta', 10000.0))
        rope_type = rope.get('rope_type', rope.get('type', 'default'))
        if float(rope.get('partial_rotary_factor', hf.get('partial_rotary_factor') or 1.0)) != 1.0:
            raise CheckpointError(f"{where}: partial_rotary_factor != 1 is not supported")
        if rope_type == 'default':
            scaling = None
        elif rope_type == 'llama3':
            rope.setdefault('original_max_position_embeddings', hf['max_position_embeddings'])
            missing = [k for k in LLAMA3_ROPE_KEYS if k not in rope]
            if missing:
                raise CheckpointError(f"{where}: llama3 RoPE parameters lack {missing}")
            scaling = tuple(sorted([('rope_type', 'llama3')] + [(k, rope[k]) for k in LLAMA3_ROPE_KEYS]))
        else:
            raise CheckpointError(f"{where}: rope_type {rope_type!r} is not supported ('default' or 'llama3')")
        return LlamaConfig(
            vocab_size=int(hf['vocab_size']), hidden_size=hidden, intermediate_size=int(hf['intermediate_size']),
            num_layers=int(hf['num_hidden_layers']), num_heads=heads,
            num_kv_heads=int(hf.get('num_key_value_heads') or heads),
            head_dim=int(hf.get('head_dim') or hidden // heads), rms_norm_eps=float(hf.get('rms_norm_eps', 1e-6)),
            rope_theta=float(theta), rope_scaling=scaling,
            max_position_embeddings=int(hf.get('max_position_embeddings', 2048)),
            tie_word_embeddings=bool(hf.get('tie_word_embeddings', False)),
            attention_bias=bool(hf.get('attention_bias', False)), mlp_bias=bool(hf.get('mlp_bias', False)))
    except KeyError as e:
        raise CheckpointError(f"{where}: LLaMA config lacks {e.args[0]!r}") from None


def llama_config_to_hf(cfg: LlamaConfig, *, dtype: str = 'float32') -> dict:
    """transformers' LlamaForCausalLM config.json (current ``rope_parameters`` spelling)."""
    rope = {'rope_type': 'default', 'rope_theta': cfg.rope_theta}
    if cfg.rope_params is not None:
        rope = {**cfg.rope_params, 'rope_theta': cfg.rope_theta}
    return {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'vocab_size': cfg.vocab_size,
        'hidden_size': cfg.hidden_size, 'intermediate_size': cfg.intermediate_size,
        'num_hidden_layers': cfg.num_layers, 'num_attention_heads': cfg.num_heads,
        'num_key_value_heads': cfg.num_kv_heads, 'head_dim': cfg.head_dim, 'hidden_act': 'silu',
        'max_position_embeddings': cfg.max_position_embeddings, 'rms_norm_eps': cfg.rms_norm_eps,
        'rope_parameters': rope, 'tie_word_embeddings': cfg.tie_word_embeddings,
        'attention_bias': cfg.attention_bias, 'attention_dropout': 0.0, 'mlp_bias': cfg.mlp_bias,
        'dtype': dtype, 'use_cache': True,
    }


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
        if cfg.attention_bias if d.startswith('self_attn') else cfg.mlp_bias:
            out.append((f'{d}.bias', f'{d}.bias', False))
    out += [(f'{n}.scale', f'{n}.weight', False) for n in _BLOCK_NORMS]
    return out


def _hf_names(cfg: LlamaConfig) -> list[str]:
    names = []
    for ours, hf, _ in _expected_tensors(cfg):
        if _is_top(ours):
            names.append(hf)
        else:
            names += [f'model.layers.{i}.{hf}' for i in range(cfg.num_layers)]
    return names


def load_llama(path, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False, lora=None,
               lora_targets=('q_proj', 'k_proj', 'v_proj', 'o_proj'), lora_seed: int = 0, **kwargs) -> Llama:
    """Build a Llama from a transformers LlamaForCausalLM folder. ``kwargs`` go to ``Llama`` (e.g.
    remat_policy, attention_impl); ``lora_seed`` draws the LoRA A matrices (B starts at zero)."""
    ckpt = HFCheckpoint(path)
    hf, _ = config_of(ckpt, model_types={'llama': None}, what='load_llama (LlamaForCausalLM)')
    cfg = llama_config_from_hf(hf, where=os.path.join(ckpt.path, 'config.json'))

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
        raise CheckpointError(f"{ckpt.path}: tensors not used by a {cfg.num_layers}-layer LlamaForCausalLM: "
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


def export_llama(module: Llama, path, *, dtype: str = 'float32', max_shard_bytes: int = 5 * 2 ** 30,
                 extra_config: dict | None = None) -> None:
    """Write ``module`` as a transformers LlamaForCausalLM folder: config.json and safetensors (sharded,
    with an index, above ``max_shard_bytes``). LoRA is merged into the written kernels; ``module`` is not
    modified. ``extra_config`` adds config.json keys such as bos/eos token ids."""
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
    config = {**llama_config_to_hf(module.cfg, dtype=dtype), **(extra_config or {})}
    with open(os.path.join(path, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
