"""``python -m studio``: the command line. Light commands import neither torch, diffusers nor gradio.

It may use ``studio.app`` and every layer below; never ``studio.ui`` (and gradio only through the studio it talks
to).
"""
