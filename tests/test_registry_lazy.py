"""The atoms shipped beyond v1 load on first use by name, in any process, and never change a v1 dataset's label
vector."""

from __future__ import annotations

import subprocess
import sys

import pytest

from demmi_rf.errors import SettingError
from demmi_rf.torch.atoms import dataset_label_order

V1_LABELS = ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_fresh_process_lists_v1_and_loads_a_shipped_atom_when_named():
    code = (
        "from demmi_rf import degradations as d\n"
        "before = d.names()\n"
        "spec = d.get('motion')\n"
        "print(before == ('noise15', 'noise25', 'noise50', 'defocus', 'haze', 'stripe'), spec.name, "
        "spec.label_index, 'motion' in d.names(), 'rain' in d.names())\n"
    )
    assert _run(code).split() == ["True", "motion", "8", "True", "False"]


def test_shipped_atoms_have_fixed_label_indices_after_v1():
    from demmi_rf import degradations as d

    indices = {name: d.get(name).label_index for name in
               ("lowlight", "overexposure", "motion", "rain", "jpeg", "lowcontrast", "ir_noise", "stripe_gain")}
    assert sorted(indices.values()) == list(range(6, 14))


def test_unknown_atom_message_lists_the_shipped_ones():
    from demmi_rf import degradations as d

    with pytest.raises(SettingError, match="stripe_gain"):
        d.get("no-such-atom")


def test_a_v1_dataset_keeps_six_labels_whatever_is_registered():
    from demmi_rf import degradations as d

    d.get("rain")  # load a shipped atom into this process first
    assert dataset_label_order(["clean", "noise50+haze+stripe", "defocus"]) == V1_LABELS
    assert dataset_label_order(["clean", "motion+stripe"]) == (*V1_LABELS, "motion")
