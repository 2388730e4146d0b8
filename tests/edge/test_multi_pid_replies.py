"""Several PIDs in one request: what the simulated ECU encodes, the link reads back, PID by
PID, and a reply cut short or answering other PIDs is never read as this one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlink.edge.link.multi_pid import frames_for, request_for
from fleetlink.edge.link.python_obd import obd
from fleetlink.edge.link.replies import classify, mode_01_values
from fleetlink.shared.signals import BY_ID
from fleetlink.simulator import isotp, j1979
from fleetlink.simulator.vehicle import Vehicle

CAN_11_500 = obd.elm327.ELM327._SUPPORTED_PROTOCOLS["6"]([])
CATALOG = sorted(
    s.obd_command
    for s in BY_ID.values()
    if s.obd_command and obd.commands[s.obd_command].pid in j1979.MODE_01_ENCODERS
)
STATE = Vehicle(2).step(1.0)


def answer(names: list[str]) -> list[str]:
    pids = [obd.commands[n].pid for n in names]
    payload = b"\x41" + b"".join(
        bytes((p,)) + (j1979.encode_mode_01(p, STATE) or b"") for p in pids
    )
    return isotp.elm_lines(isotp.segment(payload), can_id=0x7E8, headers=True, spaces=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(CATALOG), min_size=1, max_size=6, unique=True))
def test_each_pid_of_a_shared_answer_decodes_as_it_would_alone(names: list[str]) -> None:
    lines = answer(names)
    assert frames_for(names) == len(lines)
    request = request_for(names)
    result = classify(request, lines, CAN_11_500)
    assert result.kind == "ok", result.detail
    values = mode_01_values(result.messages[0].data, [obd.commands[n].pid for n in names])
    assert list(values) == [obd.commands[n].pid for n in names]
    for name in names:
        alone = answer([name])
        single = classify(request_for([name]), alone, CAN_11_500)
        assert bytes(single.messages[0].data[2:]) == values[obd.commands[name].pid]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(CATALOG), min_size=2, max_size=6, unique=True))
def test_an_answer_that_lost_a_frame_or_names_other_pids_is_not_ok(names: list[str]) -> None:
    lines = answer(names)
    if len(lines) > 1:
        assert classify(request_for(names), lines[:-1], CAN_11_500).kind == "garbled"
    others = [n for n in CATALOG if n not in names][: len(names)]
    assert classify(request_for(others), lines, CAN_11_500).kind == "mismatch"
