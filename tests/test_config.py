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
    with pytest.raises(ConfigError, match='stage=4'):
        load_config(CONFIG, ['stage=4'])
    assert load_config(CONFIG, ['stage=3']).stage == 3      # reinforcement (GRPO), with its own rl section
    for override, message in (('rl.group_size=1', 'rl.group_size=1 must be >= 2: advantages compare'),
                              ('rl.loss=ppo', "rl.loss='ppo' must be 'grpo', 'dr_grpo'"),
                              ('rl.epsilon=1.5', 'rl.epsilon=1.5 must be a number in'),
                              ("rl.rewards=('ov', 'wheel')", "'wheel' but rl.wheel names no file")):
        with pytest.raises(ConfigError, match=message):
            load_config(CONFIG, ['stage=3', override])


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
    ('optim.warmup_steps=1200', r'optim.warmup_steps=1200 must be in \[0, total_steps=1200\)'),
])
def test_step_counts_blame_their_own_key(override, blamed):
    with pytest.raises(ConfigError, match=blamed) as e:
        load_config(CONFIG + ':demo', [override])
    if override.startswith('total_steps'):
        assert 'warmup_steps' not in str(e.value)  # a bad total_steps is not a warmup problem


@pytest.mark.parametrize('override, message', [
    ('model.micro_expression.tubelets=middle', "tubelets='middle' must be"),
    ('model.micro_expression.face_input=flow', "face_input='flow' must be"),
    ('model.kernel_init=xavier', "kernel_init='xavier' must be"),
])
def test_micro_expression_choices_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, [override])


def _string_keys(cfg, prefix=''):
    import ml_collections
    for key, value in cfg.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from _string_keys(value, f'{prefix}{key}.')
        elif isinstance(value, str) or (isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)):
            yield f'{prefix}{key}'


@pytest.mark.parametrize('variant', ['demo', 'paper', 'tiny'])
def test_every_word_valued_key_is_checked_centrally(variant):
    """A new string switch must be given its choices in config_checks.CHOICES (or be declared free text there)."""
    from microemo_jax.config_checks import CHOICES, FREE_TEXT
    unclassified = [k for k in _string_keys(load_config(f'{CONFIG}:{variant}'))
                    if k not in CHOICES and k not in FREE_TEXT and k != 'sharding_rules']
    assert not unclassified, f"add these keys to config_checks.CHOICES or FREE_TEXT: {unclassified}"


def test_the_choice_tables_are_the_ones_the_code_accepts():
    import numpy as np

    from microemo_jax.config_checks import CHOICES
    from microemo_jax.data import prompt
    from microemo_jax.data.faces.detector import DETECTORS
    from microemo_jax.data.raw.bench import QUESTIONS as BENCH_QUESTIONS
    from microemo_jax.data.video import sample_times
    from microemo_jax.models.llama import LORA_TARGETS
    from microemo_jax.models.stack import REMAT_POLICIES
    assert CHOICES['model.remat_policy'] == REMAT_POLICIES
    assert CHOICES['model.lora.targets'] == LORA_TARGETS
    assert CHOICES['data.face_detector'] == DETECTORS
    assert CHOICES['data.bench_question'] == tuple(BENCH_QUESTIONS)
    for mode in CHOICES['data.sampling']:
        sample_times(2.0, 4, mode, rng=np.random.default_rng(0))
    for question in CHOICES['data.question']:
        assert prompt.question_for(question)


@pytest.mark.parametrize('override, blamed', [
    ('data.sampling=bar', r"data.sampling='bar'.*'uniform', 'random'"),
    ('data.question=why', "data.question='why'"),
    ('model.remat_policy=some', "model.remat_policy='some'"),
    ("model.lora.targets=('q_proj', 'qq_proj')", "'qq_proj' is not one of"),
    ('model.attention_impl=flash', "model.attention_impl='flash'"),
    ('optim.lr=nan', 'optim.lr=nan must be a finite number'),
    ('optim.lr=-0.001', r'optim.lr=-0.001 must be a number in \(0, 1\]'),
    ('optim.lr=30.0', 'optim.lr=30.0 must be'),
    ('optim.b1=1.0', r'optim.b1=1.0 must be a number in \[0, 1\)'),
    ('optim.b2=inf', 'optim.b2=inf must be a finite number'),
    ('optim.weight_decay=-0.05', 'optim.weight_decay=-0.05'),
    ('optim.clip_norm=-1.0', 'optim.clip_norm=-1.0'),
    ('optim.eps=0.0', 'optim.eps=0.0'),
    ('optim.min_lr=0.5', 'optim.min_lr=0.5 must not exceed optim.lr'),
    ('optim.warmup_steps=-3', 'optim.warmup_steps=-3'),
    ('data.validation_fraction=1.0', r'data.validation_fraction=1.0 must be a number in \[0, 1\)'),
    ('data.validation_fraction=-0.2', 'data.validation_fraction=-0.2'),
    ('model.lora.rank=-4', r'model.lora.rank=-4 must be a number in \[0, inf\)'),
    ('model.lora.dropout=1.5', r'model.lora.dropout=1.5 must be a rate in \[0, 1\)'),
    ('model.audio.seconds_per_position=nan', 'model.audio.seconds_per_position=nan must be a finite number'),
])
def test_ambiguous_or_absurd_values_are_refused_when_the_config_loads(override, blamed):
    with pytest.raises(ConfigError, match=blamed):
        load_config(CONFIG + ':demo', [override])


def test_the_video_marker_needs_the_centring():
    with pytest.raises(ConfigError, match=r'marker=True needs the centring \(model.video_centring.gain > 0\)'):
        load_config(CONFIG + ':paper', ['model.video_centring.marker=true'])
    assert load_config(CONFIG + ':demo', ['model.video_centring.marker=true']).model.video_centring.marker
