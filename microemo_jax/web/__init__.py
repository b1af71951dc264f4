"""The web demo behind ``python -m microemo_jax.serve``, one idea per module:

* ``upload``: what an upload must be (the limits, the checks, the message a user sees when it is refused);
* ``model_facts``: what the page says about the model: its training data, its scores (``evaluate``'s
  summary.json) and the held-out clips a visitor can pick;
* ``service``: the model behind the page: one request at a time through ``predict``, outputs kept a while;
* ``page``: the Gradio page and its API endpoint, and launching it.
"""
import os

# Before gradio is imported anywhere: no usage analytics, no version check, no Hugging Face telemetry.
os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
