"""``python -m microemo_jax.data.describe``: kept where users type it; the viewer is ``data/records/describe.py``."""
from microemo_jax.data.records.describe import main

if __name__ == '__main__':
    main()
