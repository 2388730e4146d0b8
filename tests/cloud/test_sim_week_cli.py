"""``fleetlink sim week`` end to end (a plain test: the command runs its own event loop)."""

from __future__ import annotations

import uuid


def test_sim_week_command_stores_a_fleet_and_prints_its_leaderboard(migrated_db: str) -> None:
    from typer.testing import CliRunner

    from fleetlink.__main__ import build

    tenant = f"t-{uuid.uuid4().hex[:10]}"
    result = CliRunner().invoke(
        build("sim"),
        [
            "sim",
            "week",
            "--vehicles",
            "2",
            "--days",
            "1",
            "--trips-per-day",
            "1",
            "--trip-minutes",
            "3",
            "--tenant",
            tenant,
        ],
        env={"FLEETLINK_DATABASE_URL": migrated_db},
    )
    assert result.exit_code == 0, result.output
    # The recompute also takes days other tests left marked in the shared database.
    assert "vehicle-days: 2 trips" in result.output, result.output
    assert result.output.count("Driver 00") == 2
    assert "maintenance due or overdue: 2 of 2 vehicles" in result.output
