"""The two ways stored objects fail to decode into a state.

Apart so that every part of the codec (formats, manifest, archive, chunks) raises the same
types, and the store can tell "read again" (CorruptState) from "never readable here"
(UnsupportedFormat) without knowing which part found it.
"""

from __future__ import annotations


class CorruptState(ValueError):
    """Stored objects don't decode to a state: a chunk missing, truncated or from another save
    (a reader saw a mix of generations: read again), or content that was never ours."""


class UnsupportedFormat(CorruptState):
    """The format annotation names no format this runner knows (a newer runner wrote it?).
    Reading again will not help."""
