"""Stage 3 through the entry point on a tiny corpus: from a stage-2 parameter folder to WORKDIR/params, the logged
keys, the reward curves, and an exact resume after SIGTERM (same answers sampled, same rewards, same updates)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from microemo_jax.curves import main as curves_main
from microemo_jax.runs import grpo
from microemo_jax.train import main as train_main
from microemo_jax.training import rewards
from tests.support.inference import corpus  # noqa: F401  (the session's tiny prepared corpus)
from tests.support.tiny import config_args, tiny_config
from tests.support.training import PAUSING_TRAIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# An untrained model's answers score 0 on every emotion metric, so every advantage would be 0; this reward (the
# share of distinct characters in the answer) varies from sample to sample, so the updates move the policy and
# the resumed run has something to reproduce. The SIGTERM subprocess registers it too.
REWARD = """
from microemo_jax.training import rewards
@rewards.register('test_variety')
def test_variety(c, ctx):
    return len(set(c.text)) / max(len(c.text), 1)
"""
exec(REWARD, {})
OVERRIDES = ("rl.rewards=('ov', 'format', 'test_variety')", 'rl.steps=3', 'rl.checkpoint_every=3', 'rl.lr=0.01',
             'rl.mu=2', 'rl.eval_every=3')
KEYS = {'reward_mean', 'reward_std', 'reward_ov', 'reward_format', 'reward_test_variety', 'kl', 'clip_fraction',
        'response_length', 'entropy', 'loss', 'grad_norm', 'learning_rate'}


@pytest.fixture(scope='module')
def stage2(corpus):  # noqa: F811
    """A stage-2 parameter folder (LoRA included) as train writes it; untrained: stage 3 needs its shape."""
    from flax import nnx

    from microemo_jax.models.microemo import MicroEmo
    from microemo_jax.params import save_params, write_inference_files
    cfg, root = corpus
    path = str(root / 'stage2_params')
    if not os.path.isdir(path):
        s2 = tiny_config(f'data.dir={root / "prepared"}', 'stage=2')
        save_params(path, MicroEmo(s2.model, use_lora=True, rngs=nnx.Rngs(0)), s2.model)
        write_inference_files(path, s2, str(root / 'prepared'))
    return str(root / 'prepared'), path


def overrides(stage2, *extra):
    data, params = stage2
    return [f'data.dir={data}', 'stage=3', f'init.params={params}', *OVERRIDES, *extra]


def lines(workdir):
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def straight(stage2, tmp_path_factory):
    workdir = tmp_path_factory.mktemp('rl_straight')
    last = grpo.run(tiny_config(*overrides(stage2)), str(workdir))
    return workdir, last


def test_stage3_logs_every_key_exports_params_and_draws_curves(straight, tmp_path, capsys):
    workdir, last = straight
    steps = [r for r in lines(workdir) if 'reward_mean' in r]
    assert [r['step'] for r in steps] == [1, 2, 3]
    for r in steps:
        assert KEYS <= set(r), KEYS - set(r)
    # mu=2 updates per rollout batch: the first starts at ratio 1 and KL 0 (tests/training/test_grpo_step.py), the
    # second sees the moved policy, so their means already differ at step 1
    assert steps[0]['ratio_mean'] != pytest.approx(1.0, abs=1e-6) and steps[0]['kl'] > 0
    held_out = [r for r in lines(workdir) if 'val_reward_mean' in r]      # before the first step and after the last
    assert [r['step'] for r in held_out] == [0, 3] and held_out[0]['val_clips'] >= 1
    assert {'val_reward_ov', 'val_reward_format', 'val_response_length'} <= set(held_out[0])
    assert os.listdir(workdir / 'tensorboard') and sorted(os.listdir(workdir / 'checkpoints')) == ['3']
    from microemo_jax import params
    folder = params.load(str(workdir / 'params'))        # what evaluate reads: a stage-3 model with its LoRA
    assert folder.cfg.stage == 3 and folder.info['steps'] == 3 and folder.cfg.total_steps == 3
    curves_main([str(workdir), '--rl-out', str(tmp_path / 'rl.png')])
    assert 'reward first' in capsys.readouterr().out and os.path.getsize(tmp_path / 'rl.png') > 10_000


PAUSING = REWARD + PAUSING_TRAIN


def test_sigterm_saves_and_the_rerun_resumes_exactly(straight, stage2, tmp_path):
    workdir, paused = tmp_path / 'signalled', tmp_path / 'paused'
    args = ['--workdir', str(workdir)] + config_args(*overrides(stage2))
    with open(tmp_path / 'log', 'w') as log:
        proc = subprocess.Popen([sys.executable, '-c', PAUSING, *args], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, MICROEMO_TEST_PAUSED=str(paused)))
    try:
        deadline = time.time() + 600
        while not paused.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert paused.exists(), (tmp_path / 'log').read_text()[-3000:]
        with pytest.raises(SystemExit, match=rf'error: train workdir {workdir} is in use by pid {proc.pid} '):
            train_main(args)                              # the workdir lock holds for stage 3 too
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == 0, (tmp_path / 'log').read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 'stopping at step 1 (a stop signal)' in (tmp_path / 'log').read_text()
    assert os.listdir(workdir / 'checkpoints') == ['1'] and not os.path.exists(workdir / 'params')
    grpo.run(tiny_config(*overrides(stage2)), str(workdir))       # resumes: steps 2 and 3
    a = {r['step']: r for r in lines(straight[0]) if 'reward_mean' in r}
    b = {r['step']: r for r in lines(workdir) if 'reward_mean' in r}
    assert sorted(b) == [1, 2, 3]
    for step in a:
        for key in ('loss', 'reward_mean', 'reward_test_variety', 'kl', 'entropy', 'response_length'):
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-6, abs=1e-9), (step, key)
    assert b[3]['reward_test_variety'] != a[1]['reward_test_variety']   # the steps differ: the match is not trivial


def test_stage3_needs_init_params_and_a_known_reward(stage2, tmp_path):
    data, _ = stage2
    with pytest.raises(SystemExit, match='stage 3 starts from a trained model'):
        train_main(['--workdir', str(tmp_path / 'a')] + config_args(f'data.dir={data}', 'stage=3'))
    with pytest.raises(SystemExit, match=r"unknown rewards \['nope'\]"):
        train_main(['--workdir', str(tmp_path / 'b')] + config_args(*overrides(stage2), "rl.rewards=('nope',)"))
    assert 'test_variety' in rewards.REWARDS
