"""The models: the catalogue, model references (folders, hub repos), downloads, the model manager (the only
``from_pretrained``), NVlabs folders, memory estimates.

It may use ``studio.store``, ``studio.config`` and ``studio.errors``.
"""
