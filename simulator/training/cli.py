"""``fleetlink models``: train, evaluate and list on-device anomaly models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetlink.firmware_profiles import ProfileError, load_profile, profile_folder

if TYPE_CHECKING:
    from fleetlink.edge.anomaly.runtime import LoadedModel
    from fleetlink.simulator.dataset import Dataset

app = typer.Typer(help="On-device anomaly models: train, evaluate, list.", no_args_is_help=True)

DEFAULT_PROFILE = "fleetlink-sim-car"
SHIPPED_DIR = profile_folder(DEFAULT_PROFILE)
# The checkout's folder (an editable install links each file, not the folder).
_MODELS_DIR = (SHIPPED_DIR / f"{DEFAULT_PROFILE}.toml").resolve().parent / "models"


def _dataset(path: Path | None, normal: int, faulty: int, minutes: float, seed: int) -> Dataset:
    from fleetlink.simulator.dataset import Dataset, generate, plan_drives

    if path is not None:
        try:
            return Dataset.load(path)
        except (OSError, ValueError) as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(2) from None
    return generate(plan_drives(normal, faulty, int(minutes * 60), seed))


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option(help="A dataset from `fleetlink sim dataset` (default: make one)."),
    ] = None,
    name: Annotated[str, typer.Option(help="The model's name.")] = "sim-car-anomaly",
    out_dir: Annotated[Path, typer.Option(help="Where the .tflite and its card go.")] = _MODELS_DIR,
    epochs: Annotated[int, typer.Option(min=1, max=1000)] = 60,
    normal: Annotated[int, typer.Option(min=2, help="Normal drives to make (no --data).")] = 120,
    minutes: Annotated[float, typer.Option(min=2, help="Mean drive length (no --data).")] = 25.0,
    seed: Annotated[int, typer.Option(help="Seed of the drives and the weights.")] = 0,
) -> None:
    """Train the autoencoder on normal drives, quantise it to int8, set its threshold on
    held-out normal drives; write the model and its card, print the [[models]] block."""
    from fleetlink.simulator.training.train import profile_block
    from fleetlink.simulator.training.train import train as run_training

    dataset = _dataset(data, normal, 0, minutes, seed)
    try:
        trained = run_training(dataset, out_dir, name, epochs=epochs, seed=seed)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    card = trained.card
    typer.echo(
        f"{trained.model_path}: {card.metrics['model_bytes']} bytes, int8; threshold "
        f"{card.threshold:.4g} ({card.consecutive} windows of {card.window_rows} s in a row)"
    )
    try:
        relative = trained.model_path.resolve().relative_to(_MODELS_DIR.parent)
    except ValueError:
        relative = trained.model_path
    typer.echo(profile_block(trained, str(relative)))


@app.command()
def evaluate(
    profile: Annotated[str, typer.Option(help="Profile id or .toml path.")] = DEFAULT_PROFILE,
    data: Annotated[
        Path | None, typer.Option(help="Held-out drives (default: make them from --seed).")
    ] = None,
    normal: Annotated[int, typer.Option(min=1, help="Normal drives to make (no --data).")] = 60,
    faulty: Annotated[int, typer.Option(min=1, help="Drives per fault (no --data).")] = 10,
    minutes: Annotated[float, typer.Option(min=2, help="Mean drive length (no --data).")] = 25.0,
    seed: Annotated[int, typer.Option(help="Seed of the held-out drives.")] = 1001,
    record: Annotated[
        bool, typer.Option(help="Also write the figures into each model's card (metrics).")
    ] = False,
) -> None:
    """Print recall per fault, detection delay and false alarms per vehicle-day of each of
    the profile's models beside the profile's alert thresholds, on the same held-out drives."""
    from fleetlink.simulator.training.evaluate import (
        evaluate as run_evaluation,
    )
    from fleetlink.simulator.training.evaluate import (
        held_out_metrics,
        model_detector,
        report,
        rule_detector,
        tight_thresholds,
    )

    loaded = _loaded_models(profile)
    dataset = _dataset(data, normal, faulty, minutes, seed)
    prof = load_profile(profile)
    for model in loaded:
        card = model.card
        ours = run_evaluation(dataset, model_detector(card, model.scorer))
        baselines = {
            name: run_evaluation(dataset, rule_detector(limits, dataset.features, card.consecutive))
            for name, limits in (("rules", prof.alerts), ("tight", tight_thresholds(prof.alerts)))
        }
        typer.echo(
            report(
                ours,
                baselines,
                f"model {card.name} vs the [alerts] thresholds (rules) and tighter ones (tight), "
                f"{len(dataset.specs)} held-out drives",
            )
        )
        if record:
            from fleetlink.edge.anomaly.card import card_path, write_card

            metrics = {**card.metrics, **held_out_metrics(ours, len(dataset.specs))}
            if data is None:
                metrics["held_out_seed"] = seed
            write_card(
                card_path(model.path.resolve()), card.model_copy(update={"metrics": metrics})
            )
            typer.echo(f"recorded in {card_path(model.path.resolve())}")


def _loaded_models(profile: str) -> list[LoadedModel]:
    from fleetlink.edge.anomaly.card import ModelUnavailableError
    from fleetlink.edge.anomaly.runtime import load_model

    try:
        prof = load_profile(profile)
    except ProfileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    folder = profile_folder(profile)
    loaded = []
    for ref in prof.models:
        try:
            loaded.append(load_model(ref, folder))
        except ModelUnavailableError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    if not loaded:
        typer.echo(f"error: profile {profile} names no [[models]]", err=True)
        raise typer.Exit(2)
    return loaded


@app.command("list")
def list_models() -> None:
    """List the shipped profiles' models: file, size, hash check, threshold, features."""
    from fleetlink.edge.anomaly.card import ModelUnavailableError
    from fleetlink.edge.anomaly.runtime import load_model

    found = False
    for path in sorted(SHIPPED_DIR.glob("*.toml")):
        prof = load_profile(path)
        for ref in prof.models:
            found = True
            try:
                model = load_model(ref, SHIPPED_DIR)
            except ModelUnavailableError as exc:
                typer.echo(f"{prof.id}  {ref.name}  UNAVAILABLE: {exc}")
                continue
            card = model.card
            typer.echo(
                f"{prof.id}  {ref.name}  {ref.file} ({model.path.stat().st_size} bytes, "
                f"sha256 ok)  threshold {card.threshold:.4g}, {card.window_rows} s windows, "
                f"{card.consecutive} in a row; {len(card.features)} signals: "
                + ", ".join(card.features)
            )
    if not found:
        typer.echo("no profile names a model")
