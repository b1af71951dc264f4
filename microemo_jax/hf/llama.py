"""Hugging Face ``LlamaForCausalLM`` checkpoints <-> ``microemo_jax.models.llama.Llama``: the LLaMA-only names of
``hf/llm.py`` (which also reads Qwen2/2.5 and Qwen3), kept for the code and scripts that use them.

``load_llama`` accepts only ``model_type: llama``; ``export_llama`` is ``save_llm`` (a LLaMA model is written as a
LlamaForCausalLM folder); ``llama_config_from_hf`` / ``llama_config_to_hf`` translate config.json.
"""
from __future__ import annotations

from microemo_jax.hf.llm import load_llm, save_llm
from microemo_jax.hf.llm_config import llm_config_from_hf, llm_config_to_hf, model_type_of
from microemo_jax.hf.safetensors_io import CheckpointError
from microemo_jax.models.llama import Llama, LlamaConfig

export_llama = save_llm


def load_llama(path, **kwargs) -> Llama:
    """``load_llm`` for a LlamaForCausalLM folder only (see ``hf.llm.load_llm`` for the arguments)."""
    return load_llm(path, model_types=('llama',), **kwargs)


def llama_config_from_hf(hf: dict, *, where: str = 'config.json') -> LlamaConfig:
    """A LlamaConfig from a transformers LlamaConfig dict (either RoPE spelling)."""
    if model_type_of(hf, where=where) != 'llama':
        raise CheckpointError(f"{where}: model_type {hf.get('model_type')!r} is not 'llama' "
                              f"(only LlamaForCausalLM checkpoints are supported here; hf.load_llm reads Qwen too)")
    return llm_config_from_hf(hf, where=where)


def llama_config_to_hf(cfg: LlamaConfig, *, dtype: str = 'float32') -> dict:
    """transformers' config.json for ``cfg`` (current ``rope_parameters`` spelling)."""
    return llm_config_to_hf(cfg, dtype=dtype)
