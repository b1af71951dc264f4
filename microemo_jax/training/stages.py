"""Which parameters each training stage trains (DESIGN.md §2, "Training").

Stage 1 (alignment): the LLM and the pretrained encoders (frame ViT, Whisper) are frozen; the
Q-Formers, query tokens, micro-expression branch (and a separate face ViT), global-local attention,
position/slot embeddings and projections train. Stage 2 (instruction tuning) adds the LoRA adapters.
Frozen parameters are not differentiated and hold no optimizer state.

``train_llm`` (config ``model.train_llm``) also trains the LLM's base weights. The paper model never
does (its LLM is pretrained); the ``demo`` config does, because its tiny LLM starts from random weights
and has to learn the language of the answers before the modality tokens can help.
"""
from __future__ import annotations

from flax import nnx

FROZEN_TOWERS = (('frame_encoder', 'vit'), ('audio', 'encoder'), ('llm',))


def _in_frozen_tower(path) -> bool:
    path = tuple(str(p) for p in path)
    return any(path[:len(prefix)] == prefix for prefix in FROZEN_TOWERS)


def trainable_filter(stage: int, *, train_llm: bool = False):
    """An nnx filter selecting the trainable parameters of ``stage`` (1 or 2)."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")

    def is_trainable(path, value) -> bool:
        if isinstance(value, nnx.LoRAParam):
            return stage == 2
        if train_llm and str(path[0]) == 'llm':
            return isinstance(value, nnx.Param)
        return isinstance(value, nnx.Param) and not _in_frozen_tower(path)

    return is_trainable
