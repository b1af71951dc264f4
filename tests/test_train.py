"""The training entry point on a tiny prepared corpus: losses, checkpoints, exact resume, clear errors,
and two processes x two devices through launch/local.sh."""
import json
import os
import subprocess
import sys

import pytest

from microemo_jax.runs.supervised import run
from microemo_jax.train import main as train_main
from tests.support.tiny import config_args, tiny_config
from tests.support.training import PAUSING_TRAIN

# Every test here trains through the entry point (the module's first run compiles the tiny train step).
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    from microemo_jax.data.records.build import prepare
    from microemo_jax.demo.corpus import write_corpus
    root = tmp_path_factory.mktemp('corpus')
    write_corpus(str(root / 'raw'), 6, seed=3, size=96, workers=1, progress=False)
    report = prepare(tiny_config(), 'folder', str(root / 'raw'), str(root / 'prepared'),
                     workers=1)
    assert report['written'] == 12 and report['splits'].get('validation')
    return str(root / 'prepared')


def cfg_for(data_dir, *extra):
    return tiny_config(f'data.dir={data_dir}', *extra)


def losses(workdir):
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        return {r['step']: r['loss'] for r in map(json.loads, f) if r.get('loss') is not None}


@pytest.fixture(scope='module')
def straight(data_dir, tmp_path_factory):
    """A stage-1 run of 4 steps, uninterrupted."""
    workdir = tmp_path_factory.mktemp('straight')
    last = run(cfg_for(data_dir), str(workdir))
    return workdir, last


def test_stage1_run_logs_checkpoints_and_exports(straight):
    workdir, last = straight
    assert 'val_loss' in last and last['val_loss'] > 0
    assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
    assert os.path.isdir(workdir / 'params' / 'params') and os.listdir(workdir / 'tensorboard')
    a = losses(workdir)
    assert sorted(a) == [1, 2, 3, 4] and a[4] < a[1]
    with open(workdir / 'metrics.jsonl') as f:              # the global-local gates, one key each, every report
        gates = [(r['gate/global_local.attn'], r['gate/global_local.mlp']) for r in map(json.loads, f) if 'loss' in r]
    assert len(gates) == 4 and all(-1 < g < 1 for pair in gates for g in pair) and gates[-1] != gates[0]
    from microemo_jax import params  # the export is a whole parameter folder: evaluate/predict need nothing else
    folder = params.load(str(workdir / 'params'))
    assert folder.cfg.total_steps == 4 and folder.info['steps'] == 4 and folder.llm_tokenizer.eos_token_id is not None


# Runs `train` in a real process that, at step 1, waits (up to 5 min) for a stop request, so that the test's
# SIGTERM lands at a known step; the signal handling, the save and the exit are the real ones.


def test_sigterm_saves_exits_0_and_resumes_exactly_and_the_workdir_is_locked(straight, data_dir, tmp_path, capsys):
    import signal
    import time
    workdir, paused = tmp_path / 'signalled', tmp_path / 'paused'
    args = ['--workdir', str(workdir)] + config_args(f'data.dir={data_dir}')
    with open(tmp_path / 'log', 'w') as log:
        proc = subprocess.Popen([sys.executable, '-c', PAUSING_TRAIN, *args], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, MICROEMO_TEST_PAUSED=str(paused)))
    try:
        deadline = time.time() + 600
        while not paused.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert paused.exists(), (tmp_path / 'log').read_text()[-3000:]
        # while it runs, a second `train` on the same workdir is refused, naming the running one
        with pytest.raises(SystemExit, match=rf'error: train workdir {workdir} is in use by pid {proc.pid} '):
            train_main(args)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == 0, (tmp_path / 'log').read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / 'log').read_text()
    assert 'stopping at step 1 (a stop signal); a checkpoint was saved' in out, out[-3000:]
    assert os.listdir(workdir / 'checkpoints') == ['1'] and not os.path.exists(workdir / 'params')
    assert not os.path.exists(workdir / '.lock')                            # released on exit
    run(cfg_for(data_dir), str(workdir))                                    # the re-run resumes: steps 2 to 4
    a, b = losses(straight[0]), losses(workdir)
    assert sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-6), step

    # a truncated file in the latest checkpoint: the next run says so, moves it aside and resumes from step 2
    files = [os.path.join(d, f) for d, _, fs in os.walk(workdir / 'checkpoints' / '4') for f in fs]
    victim = max(files, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.truncate(os.path.getsize(victim) // 2)
    capsys.readouterr()
    run(cfg_for(data_dir, 'train.validate_every=0'), str(workdir))
    out = capsys.readouterr().out
    moved = workdir / 'checkpoints-corrupt' / '4'
    assert 'skipped the checkpoint at step 4' in out and str(moved) in out and 'resumed from' in out, out[-3000:]
    assert 'at step 2' in out and os.path.isdir(moved) and sorted(os.listdir(workdir / 'checkpoints')) == ['1', '2', '4']
    logged = [r for r in map(json.loads, open(workdir / 'metrics.jsonl')) if 'loss' in r]
    assert [r['step'] for r in logged] == [1, 2, 3, 4]                      # cut back to step 2, then 3 and 4 redone:
    assert logged[3]['loss'] == pytest.approx(a[4], rel=1e-6)               # one curve, each step once, identical


def _saved_params(folder):
    """{name: array} of a parameter folder (params.save_params format), read without a model."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as ckptr:
        tree = ckptr.restore(os.path.join(folder, 'params'))
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {'/'.join(str(getattr(k, 'key', k)) for k in path if getattr(k, 'key', None) != 'value'): np.asarray(v)
            for path, v in flat}


def test_stage2_starts_from_stage1_params_with_lora(straight, data_dir, tmp_path):
    import numpy as np
    last = run(cfg_for(data_dir, 'stage=2', 'total_steps=2', 'train.validate_every=0',
                       f'init.params={straight[0] / "params"}'), str(tmp_path / 's2'))
    assert np.isfinite(last['loss'])
    one, two = _saved_params(straight[0] / 'params'), _saved_params(tmp_path / 's2' / 'params')
    lora_b = [n for n in two if n.endswith('/lora/b')]
    assert lora_b and not any(n in one for n in lora_b)
    assert all(np.abs(two[n]).max() > 0 for n in lora_b), 'LoRA B starts at 0 and must have been trained'
    # the trained parts continue from stage 1: one update of at most ~lr per element away from its values
    # (a fresh init would be far off), and the frozen ViT is stage 1's, bit for bit
    lr = tiny_config().optim.lr
    moved = two['video_proj/kernel'] - one['video_proj/kernel']
    assert 0 < np.abs(moved).max() <= 1.5 * lr
    vit = [n for n in one if n.startswith('frame_encoder/vit/')]
    assert vit and all(np.array_equal(one[n], two[n]) for n in vit)


@pytest.mark.parametrize('overrides, message', [
    (['mesh.data=3'], 'needs 3 devices, but 4'),
    (['data.batch_size=3'], 'data.batch_size=3 does not divide over the 4 devices'),
    (['data.dir=/nonexistent/prepared'], 'does not exist'),
    (['model.llm.intermediate_size=128', 'init.params=STAGE1'], r'intermediate|shape'),
])
def test_bad_setups_fail_before_compiling(straight, data_dir, tmp_path, overrides, message, capsys):
    overrides = [o.replace('STAGE1', str(straight[0] / 'params')) for o in overrides]
    args = ['--workdir', str(tmp_path / 'w')] + config_args(f'data.dir={data_dir}', *overrides)
    with pytest.raises(SystemExit, match=message):
        train_main(args)
    assert 'compiled the train step' not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train_main(['--config', 'configs/emer.py:demo', '--workdir', str(tmp_path), '--config.model.llm.nope=1'])


def test_non_finite_loss_stops_with_step_and_clip_names(straight, data_dir, tmp_path):
    """Parameters holding a NaN (same program as the straight run: no new compile) make step 1 non-finite."""
    import jax.numpy as jnp
    from flax import nnx

    from microemo_jax.models.microemo import MicroEmo
    from microemo_jax.params import restore_params, save_params
    cfg = cfg_for(data_dir)
    model = MicroEmo(cfg.model, rngs=nnx.Rngs(0))
    restore_params(str(straight[0] / 'params'), model)
    model.video_proj.kernel.set_value(jnp.full_like(model.video_proj.kernel.get_value(), jnp.nan))
    save_params(str(tmp_path / 'poisoned'), model, cfg.model)
    with pytest.raises(SystemExit, match=r'non-finite loss or gradient at step 1 .* on the batch of clips: \w+'):
        train_main(['--workdir', str(tmp_path / 'w')] +
                   config_args(f'data.dir={data_dir}', f'init.params={tmp_path / "poisoned"}'))
    assert not os.path.isdir(tmp_path / 'w' / 'checkpoints' / '2')  # nothing saved after the bad step


def test_a_run_never_mixes_tokenizers(straight, data_dir, tmp_path):
    """Re-running prepare with other tokenizers (one label edited is enough for the demo's) must not resume a run
    on other token ids, start stage 2 from weights that learned other ids, or re-export a finished run's
    parameters with the new tokenizers beside the old weights."""
    import shutil

    from microemo_jax.data.tokenizer_identity import TokenizerMismatch, identities
    from tests.support.retokenize import retokenized_copy
    other = retokenized_copy(data_dir, tmp_path / 'reprepared', tiny_config())
    finished = tmp_path / 'finished'
    shutil.copytree(straight[0], finished)
    tokenizers = [str(finished / 'params' / 'tokenizers' / k) for k in ('llm', 'qformer')]
    before = identities(*tokenizers)
    with pytest.raises(TokenizerMismatch, match=rf'tokenizer mismatch: the checkpoints in {finished} .* the dataset '
                                                rf'{other}'):
        run(cfg_for(other), str(finished))
    assert identities(*tokenizers) == before                                # the export was not redone
    with pytest.raises(TokenizerMismatch, match=rf'init.params={straight[0] / "params"} uses .* the dataset {other}'):
        run(cfg_for(other, 'stage=2', f'init.params={straight[0] / "params"}'), str(tmp_path / 's2'))
    with pytest.raises(SystemExit, match='error: tokenizer mismatch'):    # the command line: one line
        train_main(['--workdir', str(finished)] + config_args(f'data.dir={other}'))


def test_two_processes_with_two_devices_each(data_dir, tmp_path):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES='2', PYTHON=sys.executable)
    args = ['bash', 'launch/local.sh', '2', '--workdir', str(tmp_path / 'mp')]
    args += config_args(f'data.dir={data_dir}', 'mesh.data=2', 'mesh.fsdp=2', 'data.batch_size=4', 'total_steps=4',
                        'train.max_steps_per_run=2', 'train.validate_every=0')
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert 'stopping at step 2' in first.stdout
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'resumed from' in second.stdout and 'finished 4 steps' in second.stdout
    assert sorted(losses(tmp_path / 'mp')) == [1, 2, 3, 4]
