"""Keep Python's garbage collector from pausing live work.

A full (generation 2) collection walks every object the process holds. In a
stream host or a model replica that is the whole import graph of torch, Ray
and OpenCV, and the models: measured in a stream host with four live streams,
full collections paused every thread for 138-479 ms, the p99 of box latency
and the cause of dropped frames. Those objects live as long as the process, so
``freeze`` moves them out of the collector's view once they exist: later
collections walk only what was made since (the frames, events and tracks of
the streams), and cyclic garbage is still collected.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Exclude every object alive now from later collections (cumulative: call
    again after lazy imports or a model load)."""
    gc.freeze()
