"""The dataset generator and the training pipeline, on a tiny dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fleetlink.edge.anomaly.runtime import load_model
from fleetlink.firmware_profiles import ModelRef, load_profile
from fleetlink.simulator.dataset import FAULTS, Dataset, generate, plan_drives
from fleetlink.simulator.training.evaluate import evaluate, model_detector, rule_detector


def test_the_same_seed_makes_the_same_drives_and_labels(tmp_path: Path) -> None:
    specs = plan_drives(2, 1, 240, seed=5)
    assert [s.fault for s in specs] == [None, None, *FAULTS]
    assert all(s.onset_s is not None and 0 < s.onset_s < s.duration_s for s in specs[2:])
    first, second = generate(specs[:3]), generate(plan_drives(2, 1, 240, seed=5)[:3])
    assert np.array_equal(first.rows, second.rows)
    first.save(tmp_path / "d.npz")
    loaded = Dataset.load(tmp_path / "d.npz")
    assert loaded.specs == first.specs
    assert np.array_equal(loaded.drive(2), first.drive(2))


def test_training_writes_an_int8_model_the_edge_runtime_loads(tmp_path: Path) -> None:
    from fleetlink.simulator.training.train import train

    data = generate(plan_drives(4, 0, 420, seed=3))
    trained = train(data, tmp_path, "tiny", epochs=3, seed=1)
    card = trained.card
    assert trained.model_path.stat().st_size < 20_000
    assert card.threshold > 0 and card.features == list(data.features)
    ref = ModelRef(
        name="tiny", file="tiny.tflite", sha256=card.model_sha256, features=card.features
    )
    model = load_model(ref, tmp_path)
    import ai_edge_litert.interpreter as litert

    details = litert.Interpreter(model_path=str(trained.model_path)).get_tensor_details()
    assert any(d["dtype"] == np.int8 for d in details), "weights are not int8"
    # Evaluated like the shipped one: the calibration drives raise no alarm by construction.
    faulty = generate(plan_drives(1, 1, 420, seed=9))
    figures = evaluate(faulty, model_detector(model.card, model.scorer))
    rules = evaluate(
        faulty, rule_detector(load_profile("fleetlink-sim-car").alerts, data.features, 3)
    )
    assert sum(figures.drives.values()) == len(FAULTS) == sum(rules.drives.values())


def test_the_models_commands_list_and_evaluate_the_shipped_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fleetlink.__main__ import build

    runner = CliRunner()
    made = runner.invoke(
        build("sim"),
        [
            *("sim", "dataset", "--out", str(tmp_path / "d.npz")),
            *("--normal", "1", "--faulty", "1", "--minutes", "6", "--seed", "4"),
        ],
    )
    assert made.exit_code == 0, made.output
    assert "7 drives (1 normal, 1 of each of coolant_leak" in made.output
    listed = runner.invoke(build("models"), ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "sim-car-anomaly" in listed.output and "sha256 ok" in listed.output
    report = runner.invoke(
        build("models"), ["models", "evaluate", "--data", str(tmp_path / "d.npz")]
    )
    assert report.exit_code == 0, report.output
    assert "misfire" in report.output and "false alarms per vehicle-day" in report.output
    broken = runner.invoke(
        build("models"), ["models", "evaluate", "--data", str(tmp_path / "nope.npz")]
    )
    assert broken.exit_code == 2
