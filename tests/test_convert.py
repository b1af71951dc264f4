"""convert: Hugging Face towers -> our Orbax checkpoint, checked against the config."""
import numpy as np
import pytest
from flax import nnx

from microemo_jax import hf
from microemo_jax.config import load_config
from microemo_jax.convert import main as convert_main
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.params import restore_params
from tests.support.parity import fixture

INSTRUCTBLIP = fixture('qformer_instructblip_full')  # vision_model.* + qformer.* + query_tokens
WHISPER = fixture('whisper_model_full')
LLAMA = fixture('llama_tied_sharded')
QWEN3 = fixture('qwen3_qknorm_untied')

# The config fields that describe the fixture towers (the new MicroEmo parts keep demo sizes).
MATCHING = [
    'model.vision.hidden_size=24', 'model.vision.intermediate_size=32', 'model.vision.num_layers=1',
    'model.vision.num_heads=2', 'model.vision.patch_size=14', 'model.vision.image_size=28',
    'model.image_qformer.hidden_size=32', 'model.image_qformer.intermediate_size=48',
    'model.image_qformer.num_layers=2', 'model.image_qformer.num_heads=4', 'model.image_qformer.vocab_size=99',
    'model.image_qformer.max_position_embeddings=16', 'model.image_qformer.layer_norm_eps=1e-6',
    'model.image_qformer.num_query_tokens=6',
    'model.audio.num_mel_bins=12', 'model.audio.d_model=32', 'model.audio.encoder_layers=2',
    'model.audio.encoder_attention_heads=4', 'model.audio.encoder_ffn_dim=64', 'model.audio.max_source_positions=24',
    'model.llm.vocab_size=128', 'model.llm.hidden_size=32', 'model.llm.intermediate_size=64',
    'model.llm.num_heads=4', 'model.llm.num_kv_heads=4', 'model.llm.head_dim=8', 'model.llm.rms_norm_eps=1e-6',
    'model.llm.max_position_embeddings=64', 'model.llm.tie_word_embeddings=true',
    'model.num_frames=2', 'model.max_utterances=1',
]


def _args(out, overrides, **towers):
    args = ['--config', 'configs/emer.py:demo', '--out', str(out)]
    args += [f'--config.{o}' for o in overrides]
    for name, path in towers.items():
        args += [f"--{name.replace('_', '-')}", path]
    return args


def _flat(module):
    return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def test_converted_checkpoint_holds_the_hugging_face_weights(tmp_path, capsys):
    out = tmp_path / 'init'
    convert_main(_args(out, MATCHING, vision=INSTRUCTBLIP, image_qformer=INSTRUCTBLIP, whisper=WHISPER, llama=LLAMA))
    assert 'wrote' in capsys.readouterr().out
    cfg = load_config('configs/emer.py:demo', MATCHING)
    model = nnx.eval_shape(lambda: MicroEmo(cfg.model, rngs=nnx.Rngs(1)))
    restore_params(str(out), model)
    scan = cfg.model.scan_layers
    qformer = hf.load_qformer(INSTRUCTBLIP)
    qformer.prune_text(text_input=True, text_output=False)  # the last layer's text FFN: output never read
    for ours, theirs in [(model.frame_encoder.vit, hf.load_blip2_vision(INSTRUCTBLIP, scan=scan)),
                         (model.frame_encoder.qformer, qformer),
                         (model.audio.encoder, hf.load_whisper_encoder(WHISPER, scan=scan)),
                         (model.llm, hf.load_llama(LLAMA, scan=scan))]:
        a, b = _flat(ours), _flat(theirs)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))
    np.testing.assert_array_equal(np.asarray(model.frame_encoder.query_tokens.get_value()),
                                  hf.load_query_tokens(INSTRUCTBLIP))
    assert float(np.abs(np.asarray(model.global_local.attn_gate.get_value()) - cfg.model.global_local.gate_init).max()) == 0.0


def test_missing_towers_are_reported_as_random(tmp_path, capsys):
    convert_main(_args(tmp_path / 'x', MATCHING, llama=LLAMA))
    printed = capsys.readouterr().out
    assert 'vision         random initialisation (not given)' in printed
    assert LLAMA in printed


def test_a_tower_that_does_not_fit_the_config_names_the_field(tmp_path):
    wrong = [o for o in MATCHING if not o.startswith('model.llm.hidden_size')] + ['model.llm.hidden_size=64']
    with pytest.raises(SystemExit, match=r"hidden_size: checkpoint has 32, config model.llm.hidden_size is 64"):
        convert_main(_args(tmp_path / 'y', wrong, llama=LLAMA))
    with pytest.raises(SystemExit, match='model_type'):
        convert_main(_args(tmp_path / 'z', MATCHING, llama=WHISPER))


# The Qwen3 fixture's LLM as config fields (with MATCHING's other towers).
QWEN3_LLM = [o for o in MATCHING if not o.startswith('model.llm.')] + [
    'model.llm.vocab_size=96', 'model.llm.hidden_size=32', 'model.llm.intermediate_size=32', 'model.llm.num_layers=2',
    'model.llm.num_heads=4', 'model.llm.num_kv_heads=2', 'model.llm.head_dim=16', 'model.llm.rms_norm_eps=1e-6',
    'model.llm.rope_theta=1e6', 'model.llm.max_position_embeddings=128', 'model.llm.tie_word_embeddings=false',
    'model.llm.qk_norm=true']


def test_a_qwen_folder_is_the_llm(tmp_path, capsys):
    """--llm takes a Qwen3 folder (q/k norms, head_dim 16 != 32 / 4) when model.llm describes it."""
    out = tmp_path / 'qwen'
    convert_main(_args(out, QWEN3_LLM, llm=QWEN3))
    assert QWEN3 in capsys.readouterr().out
    cfg = load_config('configs/emer.py:demo', QWEN3_LLM)
    model = nnx.eval_shape(lambda: MicroEmo(cfg.model, rngs=nnx.Rngs(1)))
    restore_params(str(out), model)
    a, b = _flat(model.llm), _flat(hf.load_llm(QWEN3, scan=cfg.model.scan_layers))
    assert a.keys() == b.keys() and any('q_norm' in str(k) for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))
    no_norm = [o for o in QWEN3_LLM if o != 'model.llm.qk_norm=true']
    with pytest.raises(SystemExit, match=r"(?s)LLM \(qwen3\).*qk_norm: checkpoint has True, "
                                         r"config model.llm.qk_norm is False"):
        convert_main(_args(tmp_path / 'y', no_norm, llm=QWEN3))
