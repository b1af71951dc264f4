"""One module per checkpoint kind; each defines ``make(out_root)`` (see ../make_reference_fixtures.py)."""
