"""tgecnet_ref: the reference TG-ECNet (ICML 2025) for DeMMI-RF: model, two-stage trainer, inference.

Requires the ``torch`` extra: ``pip install 'demmi-rf[torch]'``.
"""
