"""A hung adapter that comes back: 20 s and 60 s stalls on the simulator and on the independent
ELM327-emulator, each adapter replaying every request it queued meanwhile.

The four stalls run side by side (one thread each) so that the module takes about 75 s,
not 3 minutes; each has its own adapter, source and counters.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from fleetlink.simulator.bench.link_stall import COMMANDS, StallRun, run_stall

pytest.importorskip("elm", reason="the ELM327-emulator package is not installed")

STALL_AFTER_S = 2.0
# The stall clock starts at the first request left unanswered, at most one poll period
# (0.2 s at 5 Hz) after the adapter stops answering; the rest is thread scheduling.
DETECTION_SLACK_S = 0.5
CASES = [
    ("simulator", 20.0),
    ("simulator", 60.0),
    ("elm327-emulator", 20.0),
    ("elm327-emulator", 60.0),
]


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, float], StallRun]:
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        futures = {
            case: pool.submit(run_stall, case[0], case[1], stall_after_s=STALL_AFTER_S)  # type: ignore[arg-type]
            for case in CASES
        }
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[f"{a}-{s:.0f}s" for a, s in CASES])
def test_every_stored_value_is_what_the_vehicle_produced_for_its_signal(
    runs: dict[tuple[str, float], StallRun], case: tuple[str, float]
) -> None:
    run = runs[case]
    assert run.samples > 0
    assert run.wrong_values == 0, run.line()


@pytest.mark.parametrize("case", CASES, ids=[f"{a}-{s:.0f}s" for a, s in CASES])
def test_the_state_goes_stalled_within_the_configured_time(
    runs: dict[tuple[str, float], StallRun], case: tuple[str, float]
) -> None:
    run = runs[case]
    assert run.detection_s is not None, run.states
    assert run.detection_s <= STALL_AFTER_S + DETECTION_SLACK_S, run.line()
    assert run.counters["stalls"] == 1
    assert [s for _, s in run.states].count("stalled") == 1


@pytest.mark.parametrize("case", CASES, ids=[f"{a}-{s:.0f}s" for a, s in CASES])
def test_polling_resumes_without_reconnecting_and_the_queue_is_discarded(
    runs: dict[tuple[str, float], StallRun], case: tuple[str, float]
) -> None:
    run = runs[case]
    assert run.recovery_s is not None, run.states
    assert run.counters["stall_recoveries"] == 1
    assert run.counters["connect_attempts"] == 1
    assert set(run.samples_after_recovery) == {0x0C, 0x0D, 0x05, 0x10}, len(COMMANDS)
    assert min(run.samples_after_recovery.values()) >= 5
    # requests sent while the adapter was silent were answered on its return and thrown away
    assert run.discarded >= 1
