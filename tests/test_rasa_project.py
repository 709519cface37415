"""Rasa's own checks on the project: data validation and the test stories."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


_CORE_FINGERPRINT = """
from rasa.graph_components.providers.domain_for_core_training_provider import (
    DomainForCoreTrainingProvider,
)
from rasa.shared.importers.importer import TrainingDataImporter

importer = TrainingDataImporter.load_from_config("config.yml", "domain.yml", ["nlu_data"])
domain = DomainForCoreTrainingProvider.create_pruned_version(importer.get_domain())
print("fingerprint", domain.fingerprint())
"""


def test_the_domain_fingerprint_does_not_depend_on_string_hashing():
    # Fine-tuning (the trainers' "Tinh chỉnh") refuses a model whose domain fingerprint
    # differs from the new training's. Rasa adds the FAQ families' retrieval actions in the
    # order of a set, which changes with Python's hash seed: unless domain.yml lists them,
    # about one fine-tuning in two failed. The seeds below gave two orders without the list.
    prints = set()
    for seed in ("1", "8"):
        result = subprocess.run(
            [sys.executable, "-c", _CORE_FINGERPRINT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        prints |= {line for line in result.stdout.splitlines() if line.startswith("fingerprint")}
    assert len(prints) == 1, prints
