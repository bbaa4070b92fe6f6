"""Per-key changelog state: the record format of a stage's changelog topic and its fold.

A stage's state lives in a compacted topic, one partition per *task* (a task is an input
partition for a co-partitioned stage, or the whole input for a single-task stage). Each
checkpoint writes only the keys that changed since the previous one (a tombstone for a key
that is gone) and then a **marker** holding the input offsets the state now covers. Records
written after the last marker belong to a checkpoint that never finished; they are ignored.

Fencing without transactions: a writer that takes over a task first appends a **claim**
record and learns its offset; that offset is its *epoch*, carried in the ``e`` header of
everything it writes. A record whose epoch is older than the latest claim before it came
from a writer that lost the task (a paused zombie) and is ignored. The restore reads the
partition up to its own claim, so it never depends on the broker's reported end offset
(tansu reports 0 for a partition while a transaction is open on it).

So on any Kafka-API broker, with or without working transactions, a restored state is the
state of exactly the inputs up to the marker's offsets, and the consumer resumes there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec

MARKER_KEY: Final = b"\x00checkpoint"
CLAIM_KEY: Final = b"\x00claim"
EPOCH_HEADER: Final = "e"
MAX_RECORD_BYTES: Final = 512 * 1024
"""A state value larger than this is refused loudly (the broker's default limit is 1 MiB).
Every stage's values are bounded far below it by design."""


class Marker(msgspec.Struct, frozen=True):
    offsets: dict[str, int]
    """``"topic:partition"`` → the next offset to consume."""
    seq: int = 0


_marker_encoder = msgspec.json.Encoder()
_marker_decoder = msgspec.json.Decoder(Marker)


def encode_marker(offsets: Mapping[tuple[str, int], int], seq: int) -> bytes:
    return _marker_encoder.encode(
        Marker({f"{t}:{p}": o for (t, p), o in sorted(offsets.items())}, seq))


def decode_offsets(marker: Marker) -> dict[tuple[str, int], int]:
    out = {}
    for tp, offset in marker.offsets.items():
        topic, _, partition = tp.rpartition(":")
        out[(topic, int(partition))] = offset
    return out


@dataclass(frozen=True)
class ChangelogRecord:
    offset: int
    key: bytes
    value: bytes | None
    epoch: int | None
    """The writer's claim offset (``None`` for a claim record itself)."""


@dataclass
class Restored:
    """The result of folding a changelog partition."""

    items: dict[str, bytes] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """Input offsets the items cover; empty when no checkpoint ever finished."""
    orphans: set[str] = field(default_factory=set)
    """Keys written by checkpoints that never finished: the new owner rewrites them, so
    compaction cannot later keep an orphaned value over the committed one."""
    seq: int = 0
    records: int = 0
    ignored: int = 0
    """Records of fenced writers."""


def fold(records: Iterable[ChangelogRecord]) -> Restored:
    """The committed state of one changelog partition, read in offset order."""
    out = Restored()
    pending: dict[str, bytes | None] = {}
    current = -1
    for rec in records:
        out.records += 1
        if rec.key == CLAIM_KEY:
            current = rec.offset
            out.orphans.update(pending)
            pending.clear()
            continue
        if rec.epoch is None or rec.epoch < current:
            out.ignored += 1
            continue
        if rec.key == MARKER_KEY:
            if rec.value is None:
                continue
            for key, value in pending.items():
                if value is None:
                    out.items.pop(key, None)
                else:
                    out.items[key] = value
                out.orphans.discard(key)
            pending.clear()
            marker = _marker_decoder.decode(rec.value)
            out.offsets = decode_offsets(marker)
            out.seq = marker.seq
            continue
        pending[rec.key.decode()] = rec.value
    out.orphans.update(pending)
    return out


__all__ = [
    "CLAIM_KEY",
    "EPOCH_HEADER",
    "MARKER_KEY",
    "MAX_RECORD_BYTES",
    "ChangelogRecord",
    "Restored",
    "encode_marker",
    "fold",
]
