"""Session fixture: the shared tiny training setup (see tests/support/training.py)."""
import pytest

from tests.support.training import make_setup


@pytest.fixture(scope='session')
def setup():
    return make_setup()
