"""Helpers shared by several test modules: ``from tests.support.X import ...``.

  tiny       configs/emer.py:tiny, the one config of the tests that compile MicroEmo end to end
  media      tiny real media files (PyAV) and frame patterns that survive coding
  records    ``make_record``: a synthetic prepared record (real JPEG bytes) at any shapes
  prepare    small prepare configs, labels and reading back a prepared dataset
  training   the tiny stage-1 setup (config, mesh, sharded state, compiled step) of the training tests
  inference  a tiny prepared demo corpus and a random-weight parameter folder (session fixtures)
  parity     the Hugging Face reference fixtures and the float32 parity assertion
  wheel      a tiny hand-made emotion-wheel mapping in MER's file formats
  unraisable which 'Exception ignored' reports come from Orbax
"""
