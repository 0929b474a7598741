"""kit.progress: the one progress event, as a worker's stdout line, and the run's time left."""

from __future__ import annotations

from kit.progress import Progress, TimeLeft, clock, from_line, to_line


def test_an_event_survives_a_workers_stdout_line():
    event = Progress(3, 5, 2, 44, logs={"loss": 0.1, "images_per_s": 900.0}, where="node-b (10.0.0.2)")
    assert from_line(to_line(event)) == event
    assert from_line("TensorFlow noise") is None and from_line(to_line(event)[:-3]) is None  # cut: dropped
    assert from_line('KIT-EVENT {"member": 1}') is None  # JSON, but not an event


def test_time_left_follows_the_pace_of_the_whole_run():
    now = [100.0]
    left = TimeLeft(clock=lambda: now[0])
    assert left.left() is None and left.elapsed() == 0
    for member in range(3):  # 3 members of 10 epochs queued
        left.update(Progress(member, 3, 0, 10, started=False))
    assert (left.epochs_done, left.epochs_total, left.left()) == (0, 30, None)  # nothing done: unknown
    now[0] = 110.0
    left.update(Progress(0, 3, 1, 10))
    left.update(Progress(1, 3, 1, 10))  # two members at once: 2 epochs in 10 s
    assert left.left() == 28 * 10 / 2
    now[0] = 150.0
    left.update(Progress(0, 3, 5, 10))
    left.update(Progress(1, 3, 4, 10))
    left.update(Progress(1, 3, 3, 10))  # late, out of order: changes nothing
    assert left.epochs_done == 9 and left.elapsed() == 50 and left.left() == 21 * 50 / 9
    for member in range(3):
        left.update(Progress(member, 3, 10, 10))
    assert left.left() == 0


def test_clock():
    assert [clock(s) for s in (None, 0, 59.6, 61, 3600, 3725, -5)] == ["?", "0:00", "1:00", "1:01", "1:00:00",
                                                                      "1:02:05", "0:00"]  # fmt: skip
