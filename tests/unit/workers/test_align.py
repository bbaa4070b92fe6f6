"""Tick alignment (``alphaspt.workers.align``) against a stage fake: when the ticks pause
and when they flow again."""

from __future__ import annotations

from alphaspt.core.events import Topics
from alphaspt.workers.align import TickAlignment

S = 1_000_000_000


class Stage:
    def __init__(self) -> None:
        self.waiting = 0
        self.calls: list[str] = []

    def backlog(self, topic: str | None = None) -> int:
        assert topic == Topics.SIGNALS_GENERATED
        return self.waiting

    def pause_input(self, topic: str) -> None:
        self.calls.append(f"pause {topic}")

    def resume_input(self, topic: str) -> None:
        self.calls.append(f"resume {topic}")


def test_ticks_pause_only_when_ahead_with_signals_waiting_and_resume_when_caught_up() -> None:
    stage = Stage()
    align = TickAlignment(stage, Topics.SIGNALS_GENERATED, ahead_s=5.0, probe_s=0.0)
    align.on_lead(100 * S)
    align.on_tick(106 * S)  # ahead, but nothing waiting
    assert stage.calls == []
    stage.waiting = 3
    align.on_tick(104 * S)  # the clock is the newest tick: still 6 s ahead
    assert stage.calls == [f"pause {Topics.TICKS}"] and align.paused
    align.on_tick(107 * S)
    assert len(stage.calls) == 1  # paused once
    align.on_lead(102 * S)  # 5 s behind: caught up
    assert stage.calls[-1] == f"resume {Topics.TICKS}" and not align.paused


def test_paused_ticks_resume_when_nothing_waits_or_the_pause_runs_too_long() -> None:
    stage = Stage()
    stage.waiting = 1
    align = TickAlignment(stage, Topics.SIGNALS_GENERATED, ahead_s=1.0, max_pause_s=0.0,
                          probe_s=0.0)
    align.on_tick(10 * S)
    assert align.paused
    align.on_tick(10 * S)  # overdue: flows again whatever the clocks say
    assert not align.paused
    align.on_tick(11 * S)
    assert align.paused
    stage.waiting = 0
    align.max_pause_s = 60.0
    align.on_idle()
    assert not align.paused
    align.on_tick(12 * S)
    stage.waiting = 1
    align.on_tick(12 * S)
    assert align.paused
    align.reset()
    assert not align.paused and align.tick_ts == align.lead_ts == 0
    assert stage.calls.count(f"pause {Topics.TICKS}") == stage.calls.count(
        f"resume {Topics.TICKS}")


class CountingStage(Stage):
    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def backlog(self, topic: str | None = None) -> int:
        self.asked += 1
        return super().backlog(topic)


def test_the_backlog_is_asked_at_most_once_per_probe_interval_while_ahead() -> None:
    stage = CountingStage()
    align = TickAlignment(stage, Topics.SIGNALS_GENERATED, ahead_s=1.0, probe_s=3600.0)
    for i in range(1000):  # ahead all along, nothing waiting
        align.on_tick((10 + i) * S)
    assert stage.asked == 1 and not align.paused
    stage.waiting = 1
    align.probed_at -= 3600.0  # the interval is up
    align.on_tick(2000 * S)
    assert stage.asked == 2 and align.paused
    align.on_lead(2000 * S)
    assert not align.paused
    for i in range(100):  # caught up: the backlog is not asked at all
        align.on_tick(2000 * S + i)
    assert stage.asked == 2
