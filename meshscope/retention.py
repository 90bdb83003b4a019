"""Keeping spooled Kafka messages until the writers' consumer group has committed them.

Used by the agents' exporter and the collector's span publisher. Both append every message to a
``meshscope.spool.Spool`` first, send from the ``Retention.cursor`` and report each acknowledgement
with ``acknowledged(position, topic, partition, offset)``; ``maybe_release()`` (called often, it
asks the broker at most every ``check_interval_s``) deletes the spool segments whose every message
the group has committed. It also closes the active segment once that is the only one left with
acknowledged messages, so that under steady traffic (every round appends and sends) a segment goes
soon after the group committed it, not only once it filled up.

Why not delete once the broker acknowledged: a broker may lose acknowledged messages (tansu's
memory storage does when killed; so does any Kafka with ``acks=1`` or an unclean leader election).
Three signs that the broker lost its log, after which everything still spooled is sent again
(the writer is idempotent, so the duplicates never show in query results):

- a partition hands out an offset at or below one it gave this process before;
- the group's committed offset of a partition goes backwards or disappears;
- a topic's id changes or the topic disappears (it was created anew: offsets alone miss this when
  other producers filled the new log past this process's old offsets before it sent again).

Without a consumer group (``consumer_group=None``) segments go as soon as they are acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from meshscope.spool import Position, Spool

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class GroupOffsets:
    """The broker's view used for retention: topic ids and the group's committed offsets."""

    def __init__(self, bootstrap: str, consumer_group: str, timeout_ms: int = 2000) -> None:
        self.bootstrap = bootstrap
        self.consumer_group = consumer_group
        self.timeout_ms = timeout_ms
        self._admin = None

    def read(self, topics: set[str]) -> tuple[dict[str, str | None], dict[TopicPartition, int]]:
        """(topic -> id, None when the topic does not exist; (topic, partition) -> committed offset)."""
        if self._admin is None:
            from kafka.admin import KafkaAdminClient

            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap.split(","), client_id=f"meshscope-retention-{self.consumer_group}",
                request_timeout_ms=self.timeout_ms, bootstrap_timeout_ms=self.timeout_ms, reconnect_backoff_max_ms=1000,
            )
        committed = self._admin.list_group_offsets(self.consumer_group).get(self.consumer_group, {})
        offsets = {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items()
                   if tp.topic in topics and meta.offset is not None and meta.offset >= 0}
        return self._topic_ids(topics), offsets

    def _topic_ids(self, topics: set[str]) -> dict[str, str | None]:
        # best effort: a broker without topic ids (before Kafka 2.8) still has the offset checks
        try:
            described = self._admin.describe_topics(sorted(topics))
        except Exception as exc:
            logger.debug("describing topics %s failed (%s)", sorted(topics), exc)
            return {}
        return {topic["name"]: topic["topic_id"] if topic["error_code"] == 0 else None for topic in described}

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:
                logger.debug("closing the Kafka admin client failed", exc_info=True)


class Retention:
    """The send cursor over a spool, and which of its segments may be deleted.

    Used from one sender thread; the spool itself may be appended to from other threads.
    """

    def __init__(
        self,
        spool: Spool,
        bootstrap: str,
        consumer_group: str | None,
        *,
        check_interval_s: float = 1.0,
        on_rewind: Callable[[], None] | None = None,
    ) -> None:
        self.spool = spool
        self.group = GroupOffsets(bootstrap, consumer_group) if consumer_group else None
        self.check_interval_s = check_interval_s
        self.on_rewind = on_rewind
        self.cursor: Position = spool.start()
        # per spool segment with acknowledged messages: the highest offset of each partition in it
        self._segment_offsets: dict[int, dict[TopicPartition, int]] = {}
        self._last_produced: dict[TopicPartition, int] = {}
        self._last_committed: dict[TopicPartition, int] = {}
        self._topic_ids: dict[str, str] = {}
        self._ids_asked: set[str] = set()
        self._last_check = 0.0

    def pending(self) -> bool:
        """True while spooled messages are not yet acknowledged by the broker."""
        return bool(self.spool.read(self.cursor, 1))

    def acknowledged(self, position: Position, topic: str, partition: int | None, offset: int | None) -> bool:
        """The message that ends at ``position`` was acknowledged at ``offset`` (None: unknown).
        False when the partition's offsets restarted: the cursor is then back at the spool's start,
        and the caller stops this round and sends from there."""
        if offset is not None and partition is not None:
            key = (topic, partition)
            if offset <= self._last_produced.get(key, -1):
                self.rewind(f"{topic}[{partition}] offsets restarted at {offset}")
                return False
            self._last_produced[key] = offset
            if topic not in self._topic_ids and topic not in self._ids_asked:
                self._ids_asked.add(topic)
                self._last_check = 0.0  # learn the topic's id now, before its log could be replaced
            offsets = self._segment_offsets.setdefault(position[0], {})
            offsets[key] = max(offset, offsets.get(key, -1))
        else:
            self._segment_offsets.setdefault(position[0], {})
        self.cursor = position
        return True

    def rewind(self, why: str) -> None:
        logger.warning("the broker lost its log (%s): re-sending every spooled message", why)
        self.cursor = self.spool.start()
        self._segment_offsets.clear()
        self._last_produced.clear()
        self._last_committed.clear()
        self._topic_ids.clear()
        self._ids_asked.clear()
        if self.on_rewind is not None:
            self.on_rewind()

    def maybe_release(self, force: bool = False) -> None:
        """Delete the segments that are safe; asks the broker at most every ``check_interval_s``.
        A broker that does not answer only delays the release (logged, retried next time)."""
        now = time.monotonic()
        if not force and now - self._last_check < self.check_interval_s:
            return
        self._last_check = now
        if self.group is None or not self._last_produced:
            # nothing acknowledged with an offset (or no group to wait for): sent is safe
            self._release_through(lambda segment: True)
            return
        topics = {topic for topic, _ in self._last_produced}
        try:
            topic_ids, committed = self.group.read(topics)
        except Exception as exc:
            logger.info("cannot read the committed offsets of group %s (%s); keeping the spool", self.group.consumer_group, exc)
            self.group.close()
            return
        if self._log_lost(topic_ids, committed):
            return

        def is_committed(segment: int) -> bool:
            offsets = self._segment_offsets.get(segment)
            if offsets is None:
                return self.spool.segment_size(segment) == 0
            return all(committed.get(key, 0) > offset for key, offset in offsets.items())

        self._release_through(is_committed)

    def release_sent(self) -> int:
        """Delete every segment already sent, committed or not (when the spool must make room);
        returns the bytes freed."""
        return self._release_through(lambda segment: True)

    def close(self) -> None:
        if self.group is not None:
            self.group.close()

    # ------------------------------------------------------------------ internals

    def _log_lost(self, topic_ids: dict[str, str | None], committed: dict[TopicPartition, int]) -> bool:
        for topic, known in self._topic_ids.items():
            current = topic_ids.get(topic, known) if topic_ids else known
            if current != known:
                self.rewind(f"topic {topic} is now {current or 'gone'}, was {known}")
                return True
        for key, previous in self._last_committed.items():
            current = committed.get(key)
            if current is None or current < previous:
                self.rewind(f"committed offset of {key[0]}[{key[1]}] went from {previous} to {current}")
                return True
        self._topic_ids.update({topic: topic_id for topic, topic_id in topic_ids.items() if topic_id})
        self._last_committed = dict(committed)
        return False

    def _release_through(self, is_safe: Callable[[int], bool]) -> int:
        freed = self._release_safe(is_safe)
        # The active segment cannot go while it is appended to, and under steady traffic it always
        # also holds the messages just sent, which the group cannot have committed yet: it would
        # only go once full. So once it is the only segment left and holds acknowledged messages,
        # it is closed: it goes at the first check after the group committed what it holds (at once
        # when it already has). One closed segment waits at a time, so a group that lags or stalls
        # does not leave a segment per check.
        segments = self.spool.segments()
        if len(segments) == 1 and segments[0] in self._segment_offsets and self.spool.roll(segments[0]):
            freed += self._release_safe(is_safe)
        return freed

    def _release_safe(self, is_safe: Callable[[int], bool]) -> int:
        """Delete the oldest segments while they are wholly sent (before the cursor's) and safe."""
        segment, offset = self.cursor
        if offset and segment != self.spool.active_segment() and offset == self.spool.segment_size(segment):
            self.cursor = (segment + 1, 0)  # a closed segment sent to its end: the next message is past it
        release_before = None
        for segment in self.spool.segments():
            if segment >= self.cursor[0] or not is_safe(segment):
                break
            release_before = segment + 1
        if release_before is None:
            return 0
        for segment in [s for s in self._segment_offsets if s < release_before]:
            del self._segment_offsets[segment]
        return self.spool.release(release_before)
