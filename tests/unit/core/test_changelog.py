"""The changelog fold: committed state only, orphans rewritten, zombies fenced."""

from __future__ import annotations

from alphaspt.core.streaming.changelog import (
    CLAIM_KEY,
    MARKER_KEY,
    ChangelogRecord,
    encode_marker,
    fold,
)


class Log:
    def __init__(self) -> None:
        self.records: list[ChangelogRecord] = []

    def claim(self) -> int:
        offset = len(self.records)
        self.records.append(ChangelogRecord(offset, CLAIM_KEY, b"nonce", None))
        return offset

    def put(self, epoch: int, key: str, value: bytes | None) -> None:
        self.records.append(ChangelogRecord(len(self.records), key.encode(), value, epoch))

    def mark(self, epoch: int, offset: int, seq: int = 1) -> None:
        self.records.append(ChangelogRecord(
            len(self.records), MARKER_KEY, encode_marker({("in", 0): offset}, seq), epoch))


def test_only_keys_up_to_the_last_marker_count_and_offsets_come_from_it() -> None:
    log = Log()
    e = log.claim()
    log.put(e, "a", b"1")
    log.put(e, "b", b"1")
    log.mark(e, 10, seq=1)
    log.put(e, "a", b"2")
    log.put(e, "b", None)
    log.mark(e, 20, seq=2)
    log.put(e, "a", b"3")  # a checkpoint that never finished
    log.put(e, "c", b"1")
    restored = fold(log.records)
    assert restored.items == {"a": b"2"}
    assert restored.offsets == {("in", 0): 20}
    assert restored.seq == 2
    assert restored.orphans == {"a", "c"}


def test_a_new_claim_fences_the_old_writer() -> None:
    log = Log()
    old = log.claim()
    log.put(old, "a", b"1")
    log.mark(old, 5)
    log.put(old, "a", b"half")  # the old writer dies mid-checkpoint
    new = log.claim()
    log.put(new, "a", b"1")  # the new owner rewrites the orphan with the committed value
    log.mark(new, 5)
    log.put(old, "a", b"zombie")  # the old writer wakes up (SIGSTOP) and writes on
    log.mark(old, 99)
    restored = fold(log.records)
    assert restored.items == {"a": b"1"}
    assert restored.offsets == {("in", 0): 5}
    assert restored.ignored == 2


def test_records_before_a_compacted_claim_still_fold() -> None:
    # Compaction keeps only the newest claim and marker: older epochs' complete records
    # appear before the latest claim with no claim of their own.
    log = Log()
    log.put(3, "a", b"1")
    log.put(7, "b", b"2")
    log.mark(7, 42)
    log.claim()
    restored = fold(log.records)
    assert restored.items == {"a": b"1", "b": b"2"}
    assert restored.offsets == {("in", 0): 42}
    assert restored.orphans == set()


def test_nothing_committed_means_no_offsets() -> None:
    log = Log()
    e = log.claim()
    log.put(e, "a", b"1")
    restored = fold(log.records)
    assert restored.items == {} and restored.offsets == {} and restored.orphans == {"a"}
