"""Which parameters each training stage trains (DESIGN.md §2, "Training").

Stage 1 (alignment): the LLM and the pretrained encoders (frame ViT, Whisper) are frozen; the
Q-Formers, query tokens, micro-expression branch (and a separate face ViT), global-local attention,
position/slot embeddings and projections train. Stage 2 (instruction tuning) adds the LoRA adapters.
Stage 3 (reinforcement, GRPO) trains what stage 2 trains; its reference model is the frozen starting copy
of exactly those parameters, and the frozen towers are one copy that policy and reference share
(``runs/grpo.py``). Frozen parameters are not differentiated and hold no optimizer state.

``train_llm`` (config ``model.train_llm``) also trains the LLM's base weights. The paper model never
does (its LLM is pretrained); the ``demo`` config does, because its tiny LLM starts from random weights
and has to learn the language of the answers before the modality tokens can help.

``train_face_encoder=False`` (config ``model.micro_expression.freeze_face_encoder``) freezes the separate face ViT
as a pretrained tower: the demo's, pretrained to read action units, then keeps describing expressions instead of
learning whatever tells its few training clips apart.
"""
from __future__ import annotations

from flax import nnx

FROZEN_TOWERS = (('frame_encoder', 'vit'), ('audio', 'encoder'), ('llm',))
STAGES = (1, 2, 3)


def uses_lora(stage: int) -> bool:
    """Whether the model of ``stage`` carries LoRA adapters (stage 2 adds them; stage 3 keeps training them)."""
    return stage >= 2


def _in_frozen_tower(path) -> bool:
    path = tuple(str(p) for p in path)
    return any(path[:len(prefix)] == prefix for prefix in FROZEN_TOWERS)


def trainable_filter(stage: int, *, train_llm: bool = False, train_face_encoder: bool = True):
    """An nnx filter selecting the trainable parameters of ``stage`` (1, 2, or 3: the same as 2)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")

    def is_trainable(path, value) -> bool:
        if isinstance(value, nnx.LoRAParam):
            return uses_lora(stage)
        if train_llm and str(path[0]) == 'llm':
            return isinstance(value, nnx.Param)
        if not train_face_encoder and str(path[0]) == 'face_vit':
            return False
        return isinstance(value, nnx.Param) and not _in_frozen_tower(path)

    return is_trainable


def model_trainable_filter(stage: int, model_cfg):
    """``trainable_filter`` with the switches of config section ``model`` (an older config's: the defaults)."""
    return trainable_filter(stage, train_llm=bool(model_cfg.get('train_llm', False)),
                            train_face_encoder=not model_cfg.micro_expression.get('freeze_face_encoder', False))
