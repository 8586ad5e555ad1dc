"""The render farm on Ray: worker actors (one per GPU), routing, retries, cancel, LoRA files sent as bytes. The only
part of the studio that imports ``ray``.

It may use ``studio.engine`` and the layers below.
"""
