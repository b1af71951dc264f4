"""The test suite is a package: shared helpers import as ``tests.support.X`` from any test module.

pytest's default (prepend) import mode puts the repository root on ``sys.path`` because of these
``__init__.py`` files; test files never edit ``sys.path`` themselves.
"""
