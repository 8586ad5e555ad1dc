"""Work that outlives a request: job kinds, the dispatcher that runs the queue, storyboards at work, extensions and
continuity, sweeps (their runs, reports, exports, policies and blind review).

It may use ``studio.farm``, ``studio.engine`` and the layers below.
"""
