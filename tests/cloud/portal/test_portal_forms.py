"""The portal's form readers: fields that do not fit become messages beside those fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleetlink.cloud.api.provisioning import TokenCreate
from fleetlink.cloud.portal.form_errors import field_errors
from fleetlink.cloud.portal.pages.settings import ScoringFormError, scoring_from_form
from fleetlink.cloud.scoring.rules import default_rules


def _form_of(rules=None) -> dict[str, str]:
    rules = rules or default_rules()
    form = {f"detection.{k}": str(v) for k, v in rules.detection.model_dump().items()}
    for i, rule in enumerate(rules.rules):
        form[f"rules.{i}.points"] = str(rule.points)
        form[f"rules.{i}.points_per_minute"] = str(rule.points_per_minute)
    return form


def test_scoring_form_sets_thresholds_and_weights_and_keeps_the_rest() -> None:
    current = default_rules()
    form = _form_of(current) | {"detection.speed_limit_kmh": "90", "rules.0.points": "7.5"}
    rules = scoring_from_form(current, form)
    assert rules.detection.speed_limit_kmh == 90
    assert rules.rules[0].points == 7.5 and rules.rules[0].type == current.rules[0].type
    assert rules.badges == current.badges and rules.risk_bands == current.risk_bands


def test_scoring_form_names_each_field_that_is_not_a_number_or_out_of_range() -> None:
    form = _form_of() | {"detection.gap_s": "five", "rules.1.points": ""}
    with pytest.raises(ScoringFormError) as refused:
        scoring_from_form(default_rules(), form)
    assert refused.value.errors == {
        "detection.gap_s": "'five' is not a number.",
        "rules.1.points": "Enter a number.",
    }
    form = _form_of() | {"rules.0.points_per_minute": "-1"}
    with pytest.raises(ScoringFormError) as refused:
        scoring_from_form(default_rules(), form)
    assert list(refused.value.errors) == ["rules.0.points_per_minute"]
    assert "greater than or equal to 0" in refused.value.errors["rules.0.points_per_minute"]


def test_field_errors_keep_the_first_message_of_each_field() -> None:
    with pytest.raises(ValidationError) as refused:
        TokenCreate.model_validate({"hours": "soon", "label": "x" * 201})
    errors = field_errors(refused.value)
    assert set(errors) == {"hours", "label"}
    assert "valid number" in errors["hours"]
