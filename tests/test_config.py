import pytest

from microemo_jax.config import ConfigError, config_from_argv, load_config

CONFIG = 'configs/emer.py'


@pytest.mark.parametrize('variant', ['demo', 'paper'])
def test_variants_load_and_lock(variant):
    cfg = load_config(f'{CONFIG}:{variant}')
    assert cfg.variant == variant
    assert cfg.model.llm.num_layers == (32 if variant == 'paper' else 2)
    with pytest.raises(AttributeError):
        cfg.model.new_field = 1  # locked: no new keys after loading


def test_overrides_take_the_field_type():
    cfg = load_config(CONFIG + ':demo', ['model.llm.num_layers=3', 'model.lora.alpha=4',
                                        "model.lora.targets=('q_proj', 'v_proj')", 'model.audio.enabled=false',
                                        'model.dtype=bfloat16'])
    assert cfg.model.llm.num_layers == 3
    assert cfg.model.lora.alpha == 4.0 and isinstance(cfg.model.lora.alpha, float)
    assert cfg.model.lora.targets == ('q_proj', 'v_proj')
    assert cfg.model.audio.enabled is False
    assert cfg.model.dtype == 'bfloat16'


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.llm.num_layer'.*did you mean 'num_layers'"):
        load_config(CONFIG, ['model.llm.num_layer=2'])
    with pytest.raises(ConfigError, match="unknown config key 'modle.llm'"):
        load_config(CONFIG, ['modle.llm=2'])


@pytest.mark.parametrize('override, message', [
    ('model.llm.num_layers=two', "is an int; got 'two'"),
    ('model.lora.alpha=big', 'is a float'),
    ('model.audio.enabled=maybe', 'is a bool'),
    ('model.lora.targets=3', 'is a tuple'),
    ('model.llm=3', 'is a section'),
])
def test_wrong_types_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, [override])


def test_cross_field_validation():
    with pytest.raises(ConfigError, match='num_heads=4 is not a multiple of num_kv_heads=3'):
        load_config(CONFIG, ['model.llm.num_kv_heads=3'])
    with pytest.raises(ConfigError, match="model.dtype='float64'"):
        load_config(CONFIG, ['model.dtype=float64'])
    with pytest.raises(ConfigError, match='stage=3'):
        load_config(CONFIG, ['stage=3'])


def test_bad_variant_and_file():
    with pytest.raises(ConfigError, match="unknown variant 'huge'"):
        load_config(CONFIG + ':huge')
    with pytest.raises(ConfigError, match='not found'):
        load_config('configs/nope.py')


def test_command_line_forms():
    cfg, rest = config_from_argv(['--config', CONFIG + ':demo', '--config.model.llm.num_layers=1',
                                  '--config.stage', '2', '--workdir', '/tmp/x'])
    assert cfg.model.llm.num_layers == 1 and cfg.stage == 2
    assert rest == ['--workdir', '/tmp/x']
    with pytest.raises(ConfigError, match='--config PATH'):
        config_from_argv(['--workdir', 'x'])


@pytest.mark.parametrize('override, blamed', [
    ('total_steps=-5', 'total_steps=-5 must be'),
    ('total_steps=0', 'total_steps=0 must be'),
    ('log_every=0', 'log_every=0 must be'),
    ('checkpoint_every=-1', 'checkpoint_every=-1 must be'),
    ('train.keep_checkpoints=0', 'train.keep_checkpoints=0 must be'),
    ('optim.warmup_steps=300', r'optim.warmup_steps=300 must be in \[0, total_steps=300\)'),
])
def test_step_counts_blame_their_own_key(override, blamed):
    with pytest.raises(ConfigError, match=blamed) as e:
        load_config(CONFIG + ':demo', [override])
    if override.startswith('total_steps'):
        assert 'warmup_steps' not in str(e.value)  # a bad total_steps is not a warmup problem


@pytest.mark.parametrize('override, message', [
    ('model.micro_expression.tubelets=middle', "tubelets='middle' must be 'anchor' or 'apex'"),
    ('model.micro_expression.face_input=flow', "face_input='flow' must be 'crops' or 'residuals'"),
    ('model.kernel_init=xavier', "kernel_init='xavier' must be 'bert' or 'fan_in'"),
])
def test_micro_expression_choices_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, [override])
