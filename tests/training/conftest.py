"""Session fixture: the shared tiny training setup (see training_setup.py)."""
import pytest

from training_setup import make_setup


@pytest.fixture(scope='session')
def setup():
    return make_setup()
