"""The Hugging Face reference fixtures (tools/make_reference_fixtures.py) and the float32 parity assertion."""
from __future__ import annotations

import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'hf')


def fixture(name: str) -> str:
    """Path of a reference fixture folder made by tools/make_reference_fixtures.py."""
    path = os.path.join(FIXTURES, name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is missing: run `make fixtures` (see tools/make_reference_fixtures.py)")
    return path


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(fixture(name), 'reference.npz')) as z:
        return dict(z)


def assert_parity(actual, expected, rtol: float = 1e-4) -> None:
    """Relative error max|a - e| / max|e| must be <= rtol (float32 parity with the reference)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != reference {expected.shape}"
    scale = max(np.abs(expected).max(), 1e-12)
    err = np.abs(actual - expected).max() / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol:g} (max |ref| {scale:.3g})"
