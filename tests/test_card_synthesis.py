"""The dataset card says which pixels (synthesis version) and which normal-sampler implementation built it; the two
implementations give the same content hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from demmi_rf import SYNTHESIS_VERSION, ziggurat

from .conftest import run_cli


def _build(out, env_extra=None) -> dict:
    code = ("import sys; from demmi_cli.main import cli; "
            f"sys.argv = ['demmi', 'build', '--out', {str(out)!r}, '--degradations', 'noise15,stripe', "
            "'--workers', '1', '--no-progress']; cli()")
    env = {**os.environ, **(env_extra or {})}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "dataset.json").read_text())


def test_card_records_synthesis_version_and_sampler_backend(tmp_path):
    card = _build(tmp_path / "a")
    assert card["synthesis"] == {"version": SYNTHESIS_VERSION, "normal_sampler": [ziggurat.backend()]}
    numpy_card = _build(tmp_path / "b", {"DEMMI_RF_NUMPY_ZIGGURAT": "1"})
    assert numpy_card["synthesis"]["normal_sampler"] == ["numpy"]
    assert numpy_card["content_hash"] == card["content_hash"]
    shown = run_cli(["info", str(tmp_path / "b")]).output
    assert f"synthesis    version {SYNTHESIS_VERSION}, normal sampler: numpy" in shown


def test_card_records_the_codec_build_of_codec_dependent_atoms(tmp_path):
    """A recipe with ``jpeg`` (bytes depend on OpenCV's libjpeg-turbo build) records that build beside the data;
    a portable-only build records none (the v1 cards are unchanged)."""
    from demmi_rf.degradations import codec_libraries

    out = tmp_path / "jpeg"
    result = run_cli(["build", "--recipe", "demmi-rf-c", "--out", str(out), "--degradations", "jpeg.s2,stripe.s1",
                      "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "dataset.json").read_text())
    library = codec_libraries(["jpeg"])["jpeg"]
    assert library and card["synthesis"]["codecs"] == {"jpeg": [library]}
    shown = run_cli(["info", str(out)]).output
    assert f"codec-dependent atoms: jpeg ({library})" in shown
    portable = tmp_path / "portable"
    assert run_cli(["build", "--out", str(portable), "--degradations", "stripe", "--workers", "1",
                    "--no-progress"]).exit_code == 0
    assert "codecs" not in json.loads((portable / "dataset.json").read_text())["synthesis"]
