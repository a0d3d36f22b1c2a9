"""Times as users read them in players: ``00:01:23.456``."""

from __future__ import annotations


def timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm`` for a time in seconds, for messages that say where in a video."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
