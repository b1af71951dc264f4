"""Device memory of the ``llm:PATH`` extractor: its weights and KV cache, counted from a config.json on the CPU.

The parameters are counted on abstract shapes (``nnx.eval_shape`` of the model ``hf.load_llm`` builds), so nothing
is allocated and no weights are needed. The KV cache is (layers, 2, rows, kv heads, positions, head dim); the
label call's positions are the prompt bucket (``generate.bucket_length``) plus ``--new`` tokens. Without
``--config`` it uses Qwen2.5-7B-Instruct's published config.json values (the official extractor):

    python tools/llm_extractor_memory.py [--config /ckpt/Qwen2.5-7B-Instruct/config.json] [--batch 16] \
        [--prompt 431] [--new 128]
"""
from __future__ import annotations

import argparse
import json
import math

import jax
from flax import nnx

from microemo_jax.generate import bucket_length
from microemo_jax.hf.llm_config import llm_config_from_hf
from microemo_jax.models.llama import Llama

QWEN2_5_7B_INSTRUCT = {   # huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json
    'model_type': 'qwen2', 'hidden_size': 3584, 'intermediate_size': 18944, 'num_attention_heads': 28,
    'num_hidden_layers': 28, 'num_key_value_heads': 4, 'vocab_size': 152064, 'max_position_embeddings': 32768,
    'rope_theta': 1000000.0, 'rms_norm_eps': 1e-06, 'tie_word_embeddings': False, 'use_sliding_window': False,
    'sliding_window': 131072, 'max_window_layers': 28, 'hidden_act': 'silu'}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', help="the checkpoint's config.json (default: Qwen2.5-7B-Instruct's values)")
    parser.add_argument('--batch', type=int, default=16, help='prompts per batch (LLMExtractor batch_size)')
    parser.add_argument('--prompt', type=int, default=431, help='longest prompt in tokens (the label prompt, ~150 '
                        "Qwen tokens, + a 256-token answer + the chat template's ~25)")
    parser.add_argument('--new', type=int, default=128, help='new tokens per reply (label_tokens)')
    args = parser.parse_args(argv)
    hf = QWEN2_5_7B_INSTRUCT
    if args.config:
        with open(args.config, encoding='utf-8') as f:
            hf = json.load(f)
    cfg = llm_config_from_hf(hf, where=args.config or 'Qwen2.5-7B-Instruct')
    model = nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0)))
    n = sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    per_token = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 2          # k and v, bfloat16
    positions = bucket_length(args.prompt) + args.new
    print(json.dumps({
        'parameters': n, 'weights_gib': {'bfloat16': round(2 * n / 2 ** 30, 2), 'float32': round(4 * n / 2 ** 30, 2)},
        'kv_cache_bytes_per_token': per_token, 'positions': positions,
        'kv_cache_gib': round(args.batch * positions * per_token / 2 ** 30, 2),
        'last_logits_gib': round(args.batch * cfg.vocab_size * 4 / 2 ** 30, 3)}, indent=2))


if __name__ == '__main__':
    main()
