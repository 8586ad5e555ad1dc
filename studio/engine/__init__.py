"""The render engine: requests and plans, events, the render and its GPU work (denoise), the per-step observer and
previews, FAR chunks, schedules, cancel, media files, LoRA, budget policies, file metadata (restore), the ZeroGPU
wrapper.

It may use ``studio.models`` and the layers below; never jobs, farm, app, cli or ui.
"""
