"""The package's layout rules (DESIGN.md §5), checked on the source so that a change cannot quietly break them.

* Nothing imports a module above it: every module sits in one layer of ``LAYERS`` (bottom first) and may
  import only modules of its own layer or below. A new module must be given a layer here: that is the
  moment to decide where it belongs.
* No entry point is imported by another module: a command is a leaf (``serve``'s own page in ``web/`` aside).
* No import cycles: a module and the modules it imports can be read in one order.
* No module over 20 KB, and the median module at most 7 KB: a module that grows past them holds more than one idea.
"""
from __future__ import annotations

import ast
import pathlib
import statistics

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'microemo_jax'

# The commands users type (``python -m microemo_jax.X``): thin CLIs that no module imports, and none imports another.
ENTRY_POINTS = ('microemo_jax.train', 'microemo_jax.prepare', 'microemo_jax.evaluate', 'microemo_jax.predict',
                'microemo_jax.serve', 'microemo_jax.web.', 'microemo_jax.convert', 'microemo_jax.plan',
                'microemo_jax.curves', 'microemo_jax.demo.report', 'microemo_jax.metrics.__main__',
                'microemo_jax.data.describe')

# Bottom first. A prefix ending in '.' covers a whole package; the longest matching prefix wins.
LAYERS = (
    ('foundations', ('microemo_jax', 'microemo_jax.config', 'microemo_jax.sharding', 'microemo_jax.pixels',
                     'microemo_jax.lock', 'microemo_jax.plots', 'microemo_jax.safe_paths',
                     'microemo_jax.csv_cells', 'microemo_jax.cli_checks', 'microemo_jax.checksums',
                     'microemo_jax.table_keys', 'microemo_jax.config_checks')),
    ('models and metrics', ('microemo_jax.models.', 'microemo_jax.metrics.')),
    ('weights import and data', ('microemo_jax.hf.', 'microemo_jax.data.', 'microemo_jax.demo.')),
    ('training', ('microemo_jax.training.',)),
    ('contracts', ('microemo_jax.batch', 'microemo_jax.params', 'microemo_jax.generate', 'microemo_jax.inference.',
                   'microemo_jax.runs.')),
    ('entry points', ENTRY_POINTS),
)
MAX_BYTES = 20_000
MEDIAN_BYTES = 7_000


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the longest prefix that matches ``module`` (None: not placed)."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            hit = (module.startswith(prefix) or module == prefix[:-1]) if prefix.endswith('.') else module == prefix
            if hit and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def imported_modules(path: pathlib.Path) -> set[str]:
    """The microemo_jax modules ``path`` imports, anywhere in the file (function-local imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or '').startswith('microemo_jax'):
            for alias in node.names:                  # `from microemo_jax.data import video` imports data.video
                sub = f'{node.module}.{alias.name}'
                out.add(sub if (PACKAGE.parent / (sub.replace('.', '/') + '.py')).exists()
                        or (PACKAGE.parent / sub.replace('.', '/')).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith('microemo_jax'))
    return out


SOURCES = sorted(PACKAGE.rglob('*.py'))


def test_every_module_has_a_layer():
    unplaced = [_module_name(p) for p in SOURCES if layer_of(_module_name(p)) is None]
    assert not unplaced, f"give these modules a layer in tests/test_layout.py LAYERS: {unplaced}"


def test_nothing_imports_a_module_above_it():
    upward = []
    for path in SOURCES:
        module = _module_name(path)
        here = layer_of(module)
        for target in sorted(imported_modules(path)):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{module} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})")
    assert not upward, '\n'.join(upward)


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_module_size(path):
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{path.name} is {size} bytes: split it (one idea each)"


def is_entry_point(module: str) -> bool:
    return any(module == p or (p.endswith('.') and module.startswith(p)) for p in ENTRY_POINTS)


def entry_point_imports(module: str, targets) -> list[str]:
    """The entry points among ``targets`` that ``module`` may not import (all but serve's own web page)."""
    own = module == 'microemo_jax.serve' or module.startswith('microemo_jax.web.')
    return [t for t in sorted(targets) if is_entry_point(t) and t != module
            and not (own and t.startswith('microemo_jax.web.'))]


def test_no_module_imports_an_entry_point():
    found = [f"{_module_name(p)} imports {t}" for p in SOURCES for t in
             entry_point_imports(_module_name(p), imported_modules(p))]
    assert not found, 'entry points are leaves: move what they share into the library\n' + '\n'.join(found)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = {_module_name(p): imported_modules(p) - {_module_name(p)} for p in SOURCES}
    assert not import_cycles(graph), import_cycles(graph)


def test_median_module_size():
    sizes = [p.stat().st_size for p in SOURCES if p.stat().st_size]   # empty package markers aside
    assert statistics.median(sizes) <= MEDIAN_BYTES, f"median module {statistics.median(sizes)} bytes"


def test_the_checks_can_fail(tmp_path):
    """The layer rule sees an upward import, including one inside a function."""
    bad = tmp_path / 'bad.py'
    bad.write_text('def f():\n    from microemo_jax.train import main\n')
    assert 'microemo_jax.train' in imported_modules(bad)
    assert layer_of('microemo_jax.train') > layer_of('microemo_jax.models.llama')
    assert layer_of('microemo_jax.new_thing') is None
    assert entry_point_imports('microemo_jax.web.page', {'microemo_jax.predict'}) == ['microemo_jax.predict']
    assert entry_point_imports('microemo_jax.serve', {'microemo_jax.web.page'}) == []
    assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
