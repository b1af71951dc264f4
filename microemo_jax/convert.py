"""Convert Hugging Face checkpoints into a microemo-jax parameter folder for a config (e.g. ``paper``).

    python -m microemo_jax.convert --config configs/emer.py:paper \
        --vision  /ckpt/instructblip-vicuna-7b     # vision_model.* (InstructBLIP/BLIP-2 or Blip2VisionModel)
        --image-qformer /ckpt/instructblip-vicuna-7b   # qformer.* and query_tokens
        --whisper /ckpt/whisper-large-v3           # encoder of WhisperModel / WhisperForConditionalGeneration
        --llm     /ckpt/llama-2-7b-chat-hf         # LlamaForCausalLM (--llama is the same flag)
        --out     /ckpt/microemo-paper-init
    python -m microemo_jax.convert --config configs/emer.py:paper_qwen2_5_7b ... --llm /ckpt/Qwen2.5-7B-Instruct

``--llm`` takes a LLaMA, Qwen2/2.5 or Qwen3 causal-LM folder (``hf.load_llm``: config.json's model_type picks
the family); the config's ``model.llm`` must describe it (``configs/emer.py:paper_qwen2_5_7b``,
``paper_qwen3_0_6b``).

Each tower is loaded in the config's storage dtype and checked against the config (a mismatch names
the field). Towers not given are initialised randomly, and the report says so. The new parts
(micro-expression branch, global-local attention, video/audio Q-Formers, projections) always start
from the config's random initialisation; global-local gates start at 0.
"""
from __future__ import annotations

import dataclasses
import sys

import jax
from flax import nnx

from microemo_jax import cli_checks, hf
from microemo_jax.config import ConfigError, config_from_argv
from microemo_jax.models import microemo as me
from microemo_jax.params import save_params


def _check(what: str, loaded_cfg, expected_cfg, config_key: str) -> None:
    loaded, expected = dataclasses.asdict(loaded_cfg), dataclasses.asdict(expected_cfg)
    wrong = [f"{k}: checkpoint has {loaded[k]!r}, config {config_key}.{k} is {expected[k]!r}"
             for k in expected if k in loaded and loaded[k] != expected[k] and not k.endswith('dropout')]
    if wrong:
        raise ConfigError(f"{what} checkpoint does not match the config:\n  " + '\n  '.join(wrong))


def load_towers(cfg, paths: dict[str, str | None]) -> tuple[dict, dict]:
    """Load the pretrained towers named in ``paths``; returns (towers for MicroEmo(...), report)."""
    m = cfg.model
    frozen = dict(dtype=me.dtype_of(m.dtype), param_dtype=me.dtype_of(m.frozen_param_dtype), scan=m.scan_layers)
    trained = dict(dtype=me.dtype_of(m.dtype), param_dtype=me.dtype_of(m.param_dtype))
    towers, report = {}, {}
    if paths.get('vision'):
        vit = hf.load_blip2_vision(paths['vision'], **frozen)
        _check('vision', vit.cfg, me.vision_config(m.vision), 'model.vision')
        towers['vit'] = vit
    if paths.get('image_qformer'):
        qf = hf.load_qformer(paths['image_qformer'], **trained)
        _check('image Q-Former', qf.cfg, me.qformer_config(m.image_qformer, m.vision.hidden_size), 'model.image_qformer')
        towers['image_qformer'] = qf
    if paths.get('whisper'):
        if not m.audio.enabled:
            raise ConfigError("--whisper given but model.audio.enabled is False")
        wh = hf.load_whisper_encoder(paths['whisper'], **frozen)
        _check('Whisper encoder', wh.cfg, me.whisper_config(m.audio), 'model.audio')
        towers['whisper'] = wh
    if paths.get('llm'):
        llm = hf.load_llm(paths['llm'], **frozen)
        _check(f"LLM ({hf.HFCheckpoint(paths['llm']).config.get('model_type')})", llm.cfg, me.llama_config(m.llm),
               'model.llm')
        towers['llm'] = llm
    for name in ('vision', 'image_qformer', 'whisper', 'llm'):
        report[name] = paths.get(name) or 'random initialisation (not given)'
    return towers, report


def convert(cfg, paths: dict[str, str | None], out: str) -> dict:
    towers, report = load_towers(cfg, paths)
    model = me.MicroEmo(cfg.model, use_lora=False, rngs=nnx.Rngs(cfg.seed), **towers)
    if 'image_qformer' in towers:
        model.frame_encoder.query_tokens.set_value(
            jax.numpy.asarray(hf.load_query_tokens(paths['image_qformer']), model.frame_encoder.query_tokens.get_value().dtype))
        report['query_tokens'] = paths['image_qformer']
    save_params(out, model, cfg.model, extra=report)
    return report


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = cli_checks.Parser(prog='python -m microemo_jax.convert', description=__doc__.split('\n')[0])
    parser.add_argument('--vision', type=cli_checks.existing_dir)
    parser.add_argument('--image-qformer', dest='image_qformer', type=cli_checks.existing_dir)
    parser.add_argument('--whisper', type=cli_checks.existing_dir)
    parser.add_argument('--llm', '--llama', dest='llm', type=cli_checks.existing_dir,
                        help='LLaMA, Qwen2/2.5 or Qwen3 causal-LM folder')
    parser.add_argument('--out', required=True, type=cli_checks.out_dir)
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    try:
        report = convert(cfg, vars(args), args.out)
    except (ConfigError, hf.CheckpointError, OSError) as e:   # both errors name the file and the key
        cli_checks.fail(e)
    for k, v in report.items():
        print(f"{k:14s} {v}")
    print(f"wrote {args.out}")


if __name__ == '__main__':
    main()
