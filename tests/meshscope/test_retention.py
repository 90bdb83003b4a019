"""Retention of spooled messages until the writers' group committed them, and the signs of a
broker that lost its log. The group's answers come from a small double here (for speed and to
stage the races); the real broker is in tests/agents/test_kafka.py and tests/collector/test_crash.py."""

from __future__ import annotations

from meshscope.retention import Retention
from meshscope.spool import Spool


class BytesSpool(Spool[bytes]):
    def encode(self, record: bytes) -> bytes:
        return record

    def decode(self, payload: bytes) -> bytes:
        return payload


class Group:
    """What the broker would answer: topic ids and the group's committed offsets."""

    consumer_group = "writers"

    def __init__(self) -> None:
        self.ids = {"t": "id-1"}
        self.committed: dict[tuple[str, int], int] = {}

    def read(self, topics):
        return {topic: self.ids.get(topic) for topic in topics}, dict(self.committed)

    def close(self) -> None:
        pass


def setup(tmp_path, records: int = 10, segment_bytes: int = 40):
    spool = BytesSpool(tmp_path, max_bytes=1 << 20, segment_bytes=segment_bytes)
    spool.append([b"m%02d" % n for n in range(records)])
    retention = Retention(spool, "unused:1", "writers")
    retention.group = group = Group()
    return spool, retention, group


def send_all(spool, retention, first_offset: int = 0) -> bool:
    """Acknowledge every unsent record on partition 0 in order from ``first_offset``."""
    for n, (position, _) in enumerate(spool.read(retention.cursor, 1000)):
        if not retention.acknowledged(position, "t", 0, first_offset + n):
            return False
    return True


def test_segments_go_once_the_group_committed_past_them(tmp_path):
    spool, retention, group = setup(tmp_path)
    assert len(spool.segments()) > 2
    assert send_all(spool, retention) and not retention.pending()
    retention.maybe_release(force=True)
    assert spool.size_bytes > 0, "acknowledged is not enough"
    group.committed = {("t", 0): 4}  # offsets 0-3 are in the writers' hands
    retention.maybe_release(force=True)
    left = [record for _, record in spool.read(spool.start(), 100)]
    assert left[0] in (b"m03", b"m04") and left[-1] == b"m09"  # whole segments only, never one past 3
    group.committed = {("t", 0): 10}
    retention.maybe_release(force=True)
    assert spool.size_bytes == 0 and not retention.pending()


def test_offsets_that_restart_mean_the_log_is_gone(tmp_path):
    spool, retention, group = setup(tmp_path)
    assert send_all(spool, retention)
    spool.append([b"late"])
    # the broker came back empty: the next message gets offset 0 again
    assert not send_all(spool, retention, first_offset=0)
    assert retention.cursor == spool.start()
    assert [record for _, record in spool.read(retention.cursor, 100)][-1] == b"late"
    assert send_all(spool, retention, first_offset=0)


def test_a_topic_created_anew_is_seen_even_when_new_offsets_are_higher(tmp_path):
    spool, retention, group = setup(tmp_path)
    assert send_all(spool, retention)
    group.committed = {("t", 0): 3}
    retention.maybe_release(force=True)
    # restarted broker; other producers filled the new log past our offsets and the writers
    # committed there: offsets alone would call everything committed
    group.ids = {"t": "id-2"}
    group.committed = {("t", 0): 500}
    rewinds = []
    retention.on_rewind = lambda: rewinds.append(1)
    before = spool.size_bytes
    retention.maybe_release(force=True)
    assert rewinds and spool.size_bytes == before and retention.cursor == spool.start()


def test_a_committed_offset_that_goes_back_or_vanishes_means_the_log_is_gone(tmp_path):
    spool, retention, group = setup(tmp_path)
    assert send_all(spool, retention)
    group.committed = {("t", 0): 2}
    retention.maybe_release(force=True)
    group.committed = {}
    retention.maybe_release(force=True)
    assert retention.cursor == spool.start() and retention.pending()


def test_without_a_group_sent_is_released_but_never_what_came_after(tmp_path):
    spool = BytesSpool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    retention = Retention(spool, "unused:1", None)
    spool.append([b"a", b"b"])
    records = spool.read(retention.cursor, 10)
    spool.append([b"c"])  # appended after the sender read: must not be rolled away unsent
    for position, _ in records:
        assert retention.acknowledged(position, "t", None, None)
    retention.maybe_release(force=True)
    assert [record for _, record in spool.read(retention.cursor, 10)] == [b"c"]
    assert [record for _, record in spool.read(spool.start(), 10)] == [b"a", b"b", b"c"]
    position, _ = spool.read(retention.cursor, 10)[0]
    assert retention.acknowledged(position, "t", None, None)
    retention.maybe_release(force=True)
    assert spool.size_bytes == 0 and not retention.pending()


def test_a_record_larger_than_a_read_chunk_comes_back(tmp_path, monkeypatch):
    import meshscope.spool

    monkeypatch.setattr(meshscope.spool, "_READ_CHUNK", 64)
    spool = BytesSpool(tmp_path, max_bytes=1 << 20)
    spool.append([b"small", b"x" * 200, b"after"])
    assert [record for _, record in spool.read(spool.start(), 10)] == [b"small", b"x" * 200, b"after"]


def test_under_steady_traffic_a_committed_segment_goes_long_before_it_fills_up(tmp_path):
    # one segment could hold every record of this test: it never rolls over by size
    spool = BytesSpool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    retention = Retention(spool, "unused:1", "writers")
    retention.group = group = Group()
    sent = 0

    def exporter_round() -> None:
        """What the agent's exporter does every flush: append this round's message, send, check."""
        nonlocal sent
        spool.append([b"m%03d" % sent])
        for position, _ in spool.read(retention.cursor, 100):
            assert retention.acknowledged(position, "t", 0, sent)
            sent += 1
        retention.maybe_release(force=True)

    def retained() -> list[int]:
        return [int(record[1:]) for _, record in spool.read(spool.start(), 1000)]

    # the writers commit what was sent up to the round before: the active segment always holds
    # the message of the round just sent, never committed when the agent checks
    for _ in range(6):
        group.committed = {("t", 0): sent} if sent else {}
        exporter_round()
        assert retained() == [sent - 1], "only the uncommitted message of this round is kept"
        assert len(spool.segments()) <= 2

    # the writers stall after committing everything up to here: all of that goes, nothing after it,
    # and the spool does not grow a segment per round meanwhile
    stop = group.committed[("t", 0)] = sent
    for _ in range(5):
        exporter_round()
        assert retained() == list(range(stop, sent))
        assert len(spool.segments()) <= 2
    # they catch up (and go on one round behind): the spool is back to this round's message
    for _ in range(2):
        group.committed = {("t", 0): sent}
        exporter_round()
    assert retained() == [sent - 1]


def test_a_segment_closed_with_unsent_records_goes_only_once_they_are_committed(tmp_path):
    # the collector's request threads append while its sender sends and checks
    spool, retention, group = setup(tmp_path, records=2, segment_bytes=1 << 20)
    assert send_all(spool, retention)
    spool.append([b"late"])  # not sent yet
    group.committed = {("t", 0): 1}  # only m00
    retention.maybe_release(force=True)
    assert [record for _, record in spool.read(spool.start(), 10)] == [b"m00", b"m01", b"late"]
    group.committed = {("t", 0): 2}  # everything acknowledged, but "late" was never sent
    retention.maybe_release(force=True)
    assert [record for _, record in spool.read(spool.start(), 10)] == [b"m00", b"m01", b"late"]
    assert send_all(spool, retention, first_offset=2)
    retention.maybe_release(force=True)
    assert [record for _, record in spool.read(spool.start(), 10)] == [b"m00", b"m01", b"late"]  # "late" not committed
    group.committed = {("t", 0): 3}
    retention.maybe_release(force=True)
    assert spool.size_bytes == 0 and not retention.pending()
