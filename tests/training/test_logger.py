"""MetricsLogger: progress line, metrics.jsonl, TensorBoard events."""
import io
import json
import os

import numpy as np
import pytest

from microemo_jax.training.logger import MetricsLogger


def _metrics(loss, tokens=10.0, finite=True):
    return dict(loss=np.float32(loss), grad_norm=np.float32(0.5), learning_rate=np.float32(1e-3),
                tokens=np.float32(tokens), input_tokens=np.float32(100.0), finite=np.bool_(finite))


def test_reports_every_log_every_steps_to_stdout_jsonl_and_tensorboard(tmp_path):
    out = io.StringIO()
    with MetricsLogger(str(tmp_path), total_steps=6, log_every=2, model_flops_per_step=1e12,
                       hardware_flops_per_step=1.5e12, peak_flops_per_device=1e15, num_devices=2,
                       stream=out) as logger:
        assert logger.log(1, _metrics(4.0)) is None
        first = logger.log(2, _metrics(2.0, tokens=30.0))
        assert first['step'] == 2 and first['loss'] == 2.5  # token-weighted: (4 * 10 + 2 * 30) / 40
        logger.log(3, _metrics(float('nan'), finite=False))
        second = logger.log(4, _metrics(1.0))
        assert second['loss'] == 1.0 and second['nonfinite_steps'] == 1
        assert second['steps_per_s'] > 0 and second['tokens_per_s'] > 0 and 0 < second['mfu']
        assert second['hfu'] == pytest.approx(1.5 * second['mfu'])      # remat recomputation counts in HFU only
        assert second['mfu'] == pytest.approx(1e12 * second['steps_per_s'] / (2 * 1e15))
        logger.log_eval(4, {'val_loss': np.float32(1.5), 'val_tokens': 7.0})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith('step 2/6  loss 2.5000  lr 0.001') and 'ETA' in lines[0]
    assert 'MFU' in lines[1] and 'HFU' in lines[1] and '1 non-finite steps skipped' in lines[1]
    assert 'val_loss 1.5000' in lines[2]
    records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
    assert [r['step'] for r in records] == [2, 4, 4]
    assert records[0]['steps_per_s'] > 0                                # timed from step 1 (its compile excluded)
    assert records[2] == {'step': 4, 'val_loss': 1.5, 'val_tokens': 7.0}
    events = os.listdir(tmp_path / 'tensorboard')
    assert len(events) == 1 and events[0].startswith('events.out.tfevents')
    assert os.path.getsize(tmp_path / 'tensorboard' / events[0]) > 100


def test_mfu_is_na_without_a_peak(tmp_path):
    out = io.StringIO()
    with MetricsLogger(str(tmp_path), total_steps=2, log_every=1, stream=out) as logger:
        logger.log(1, _metrics(1.0))
        record = logger.log(2, _metrics(1.0))
    assert 'mfu' not in record and 'MFU n/a' in out.getvalue()


def test_the_first_report_has_no_rate_yet_and_says_so(tmp_path):
    out = io.StringIO()
    with MetricsLogger(str(tmp_path), total_steps=3, log_every=1, model_flops_per_step=1e12,
                       peak_flops_per_device=1e15, num_devices=1, stream=out) as logger:
        first = logger.log(1, _metrics(2.0))
        second = logger.log(2, _metrics(1.0))
    line = out.getvalue().splitlines()[0]
    assert line.startswith('step 1/3  loss 2.0000') and 'nan' not in line and 'from the next report' in line
    assert 'mfu' not in first and second['steps_per_s'] > 0 and second['mfu'] == second['hfu'] > 0
    first_json = json.loads(open(tmp_path / 'metrics.jsonl').readline())
    assert first_json['steps_per_s'] is None and first_json['loss'] == 2.0


def _events(folder):
    """Every Event in the TensorBoard files of ``folder`` (TFRecord framing: length, crc, data, crc)."""
    import struct

    from tensorboardX.proto import event_pb2
    out = []
    for name in sorted(os.listdir(folder)):
        data = open(os.path.join(folder, name), 'rb').read()
        at = 0
        while at < len(data):
            (length,) = struct.unpack('<Q', data[at:at + 8])
            out.append(event_pb2.Event.FromString(data[at + 12:at + 12 + length]))
            at += 12 + length + 4
    return out


def test_a_resumed_run_cuts_its_logs_back_to_the_restored_step(tmp_path):
    """Killed after logging step 5 but before saving it, resumed from the checkpoint of step 3: steps 4 and 5 are
    redone, and the logs must hold each step once (one curve), not 4 and 5 twice."""
    with MetricsLogger(str(tmp_path), total_steps=6, log_every=1, stream=io.StringIO(), resume_step=0) as logger:
        for step in range(1, 6):
            logger.log(step, _metrics(10.0 - step))
        logger.log_eval(4, {'val_loss': np.float32(3.0)})
    with open(tmp_path / 'metrics.jsonl', 'a') as f:
        f.write('{"step": 6, "loss"')                                     # the killed process's torn last line
    with MetricsLogger(str(tmp_path), total_steps=6, log_every=1, stream=io.StringIO(), resume_step=3) as logger:
        for step in (4, 5, 6):
            logger.log(step, _metrics(1.0))
    records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
    assert [r['step'] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r['loss'] for r in records[3:]] == [1.0, 1.0, 1.0]            # the redone steps, not the lost ones
    purges = [e.step for e in _events(tmp_path / 'tensorboard') if e.session_log.status == 1]  # SessionLog.START
    assert 4 in purges                                                    # TensorBoard drops older events from step 4 on
    # without resume_step (another caller): nothing is cut
    with MetricsLogger(str(tmp_path), total_steps=6, log_every=1, stream=io.StringIO()) as logger:
        logger.log(6, _metrics(0.5))
    assert [json.loads(line)['step'] for line in open(tmp_path / 'metrics.jsonl')] == [1, 2, 3, 4, 5, 6, 6]


def test_gates_reach_the_line_the_jsonl_and_tensorboard(tmp_path):
    out = io.StringIO()
    with MetricsLogger(str(tmp_path), total_steps=2, log_every=2, stream=out) as logger:
        logger.log(1, {**_metrics(1.0), 'gate/global_local.attn': np.float32(0.1)})
        logger.log(2, {**_metrics(1.0), 'gate/global_local.attn': np.float32(0.25),
                       'gate/global_local.mlp': np.float32(-0.5)})
    record = json.loads(open(tmp_path / 'metrics.jsonl').readline())
    assert record['gate/global_local.attn'] == 0.25 and record['gate/global_local.mlp'] == -0.5   # the last step's
    assert 'gates 0.250 -0.500' in out.getvalue()
    scalars = {(v.tag, e.step): v.simple_value for e in _events(tmp_path / 'tensorboard') for v in e.summary.value}
    assert scalars[('gate/global_local.attn', 2)] == 0.25 and scalars[('gate/global_local.mlp', 2)] == -0.5
    assert ('gate/global_local.attn', 1) not in scalars                   # one report, at step 2
