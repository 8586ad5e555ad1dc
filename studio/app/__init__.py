"""The studio process: wiring (``Studio``), owning the data folder and the owner API's client, crash recovery and
clean-up, the desktop window.

It may use ``studio.jobs`` and every layer below; never ``studio.cli`` or ``studio.ui``.
"""
