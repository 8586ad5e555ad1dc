"""SQLite: the render history and its numbered migrations, storyboards, the render queue.

It imports nothing of the studio but ``studio.errors``.
"""
