"""Test-wide settings: 4 CPU devices for mesh tests, a persistent compile cache, parsed absl flags."""
import os

os.environ.setdefault('JAX_NUM_CPU_DEVICES', '4')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.expanduser('~/.cache/microemo-jax/jax-compile'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
os.environ.setdefault('JAX_DEFAULT_MATMUL_PRECISION', 'highest')  # float32 parity also on GPUs (no TF32)
# XLA:CPU's concurrency-optimised scheduler can deadlock collectives across the fake CPU devices.
_xla_flags = os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_enable_concurrency_optimized_scheduler=false'
# The suite compiles many small programs and runs each briefly, so compiling is most of its time: LLVM at -O0
# compiles them about twice as fast (tests/training/test_step.py with an empty cache: 112 s -> 49 s). Matmuls
# run in XLA's prebuilt libraries either way. Set the flag yourself to test at another level.
if '--xla_backend_optimization_level' not in _xla_flags:
    _xla_flags += ' --xla_backend_optimization_level=0'
os.environ['XLA_FLAGS'] = _xla_flags.strip()
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import absl.flags  # noqa: E402

absl.flags.FLAGS.mark_as_parsed()
