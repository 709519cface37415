"""Rasa's own checks on the project: data validation and the test stories."""

from __future__ import annotations

import json
import subprocess

import pytest

from bot.nlu.brain import newest_model
from tests.config import SETTINGS
from tests.conftest import ROOT

pytestmark = pytest.mark.engines


def test_rasa_data_validate_reports_no_errors(rasa_bin):
    result = subprocess.run(
        [
            rasa_bin,
            "data",
            "validate",
            "--domain",
            "domain.yml",
            "--data",
            "nlu_data",
            "--config",
            "config.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "error" not in output.lower().replace("errors", ""), output


def test_every_dialogue_rule_passes_its_test_story(rasa_bin, tmp_path):
    result = subprocess.run(
        [
            rasa_bin,
            "test",
            "core",
            "--model",
            str(newest_model(SETTINGS.models_dir)),
            "--stories",
            str(SETTINGS.test_stories),
            "--out",
            str(tmp_path),
            "--no-plot",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    failed = (tmp_path / "failed_test_stories.yml").read_text(encoding="utf-8")
    assert "None of the test stories failed" in failed, failed
    report = json.loads((tmp_path / "story_report.json").read_text())
    assert report["conversation_accuracy"]["accuracy"] == 1.0
    assert report["conversation_accuracy"]["total"] >= 20
