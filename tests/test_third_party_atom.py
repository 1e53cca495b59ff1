"""A seventh atom defined OUTSIDE the package works through the registry alone: degrade(), a build, the contact
sheet, the albumentations transforms, DeMMIDataset and the cascade; and an entry point registers one lazily."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from demmi_rf import degrade
from demmi_rf.degradations import ATOMS, ENTRY_POINT_GROUP, Registry, get, names, unregister_atom
from demmi_rf.errors import SettingError
from demmi_rf.recipe import load_recipe
from demmi_rf.rng import Stream

SEED, PID = 20250713, "msrs/00004N"

# the user's module: written to a temporary folder, imported from there (nothing in demmi_rf is edited)
PLUGIN = '''
import numpy as np
from demmi_rf.degradations import STAGE_SCENE, UNIFORM, AtomSpec, Param, register_atom
from demmi_rf.degradations._arrays import work_buffer
from demmi_rf.degradations._ranges import draw_param
from demmi_rf.rng import Stream

GAIN = Param("gain", UNIFORM, lo=0.0, hi=4.0, default=[0.5, 0.9], doc="brightness gain")
SEEN = []  # the type of every stream this atom received

def draw(stream, image, ranges, atom="dim"):
    SEEN.append(type(stream))
    return {"gain": draw_param(stream, ranges, GAIN, atom)}

def apply(image, stream=None, *, gain, inplace=False):
    SEEN.append(type(stream))
    out = work_buffer(image, inplace)
    out *= np.float32(gain)
    out += stream.normal(out.shape[1], 2.0)[None, :, None] if out.ndim == 3 else 0  # a little per-column grain
    return out

SPEC = register_atom(AtomSpec(name="dim", family="dim", modality="vis", stage=STAGE_SCENE + 7, params=(GAIN,),
                              draw=draw, apply=apply, summary="global brightness gain",
                              label="dim g={gain:.2f}"))
'''


@pytest.fixture()
def dim(tmp_path, monkeypatch):
    """Register the user's ``dim`` atom from a module outside the package; unregister it afterwards."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "my_dim_atom.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("my_dim_atom", None)
    import my_dim_atom  # noqa: PLC0415

    yield my_dim_atom
    unregister_atom("dim")
    sys.modules.pop("my_dim_atom", None)


def _digest(out) -> str:
    return hashlib.sha256(out.vis.tobytes() + out.ir.tobytes()).hexdigest()


def test_degrade_uses_the_new_atom_and_leaves_v1_settings_alone(msrs_pair, dim):
    vis, ir = msrs_pair
    assert "dim" in names() and get("dim").module is dim
    out = degrade(vis, ir, "dim+noise25", SEED, pair_id=PID)
    assert out.setting == "noise25+dim"  # canonical: descending stage (noise 30 > dim 17), VIS first
    assert set(out.params) == {"noise25", "dim"} and 0.5 <= out.params["dim"]["gain"] <= 0.9
    assert out.ir is ir
    alone = degrade(vis, ir, "dim", SEED, pair_id=PID)
    assert alone.vis.mean() < 0.92 * vis.mean() and alone.ir is ir
    assert set(dim.SEEN) == {Stream}  # the atom only ever saw the narrow stream
    # applied before noise (stage 17 < 30) and after haze (10): the chain is haze -> dim -> noise
    from demmi_rf.settings import parse_setting  # noqa: PLC0415

    assert [a.name for a in parse_setting("noise50+dim+haze").chain("vis")] == ["haze", "dim", "noise50"]
    # a registered seventh atom changes no bytes of the v1 settings
    before = _digest(degrade(vis, ir, "noise50+haze+stripe", SEED, pair_id=PID))
    unregister_atom("dim")
    try:
        assert _digest(degrade(vis, ir, "noise50+haze+stripe", SEED, pair_id=PID)) == before
        with pytest.raises(SettingError, match="unknown atom 'dim'"):
            degrade(vis, ir, "dim", SEED, pair_id=PID)
    finally:
        from demmi_rf.degradations import register_atom  # noqa: PLC0415

        register_atom(dim.SPEC)


def test_recipe_validation_comes_from_the_schema(dim, tmp_path):
    data = load_recipe().to_json()
    data["settings"] = ["clean", "dim", "noise15+dim"]
    data["degradations"]["dim"] = {"gain": [0.9, 0.5]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"degradations.dim.gain: range \[0.9, 0.5\] has its bounds reversed"):
        load_recipe(path)
    data["degradations"]["dim"] = {"gain": 7.0, "extra": 1}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as err:
        load_recipe(path)
    assert "outside the valid interval [0.0, 4.0]" in str(err.value) and "unknown parameter 'extra'" in str(err.value)
    del data["degradations"]["dim"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no parameters for atom 'dim'"):
        load_recipe(path)


def test_build_and_dataset_with_the_new_atom(dim, tmp_path, samples_dir):
    from demmi_rf.builder import build_dataset  # noqa: PLC0415
    from demmi_rf.store import open_dataset  # noqa: PLC0415
    from demmi_rf.torch import DeMMIDataset  # noqa: PLC0415
    from demmi_rf.torch.atoms import atom_order, atoms_vector  # noqa: PLC0415

    src = tmp_path / "src" / "MSRS" / "test"
    for kind in ("vi", "ir"):
        (src / kind).mkdir(parents=True)
        shutil.copy(samples_dir / "MSRS" / "test" / kind / "00004N.png", src / kind / "00004N.png")
    data = load_recipe().to_json()
    data.update(name="with-dim", settings=["clean", "dim", "noise15+dim"], test_fraction=0.0)
    data["degradations"]["dim"] = {"gain": [0.5, 0.9]}
    recipe = tmp_path / "with-dim.json"
    recipe.write_text(json.dumps(data))
    out = tmp_path / "ds"
    build_dataset(out, [tmp_path / "src" / "MSRS"], recipe=recipe, workers=1)

    ds = open_dataset(out)
    assert sorted(ds.manifest["setting"].unique()) == ["clean", "dim", "noise15+dim"]
    row = ds.manifest[ds.manifest["setting"] == "noise15+dim"].iloc[0]
    got = ds.read(row["sample_id"], arrays=("vis", "vis_clean", "ir_clean"))
    want = degrade(got["vis_clean"], got["ir_clean"], "noise15+dim", data["seed"], pair_id=row["pair_id"],
                   ranges=data["degradations"])
    assert np.array_equal(got["vis"], want.vis) and not np.array_equal(got["vis"], got["vis_clean"])

    order = atom_order()
    assert order[:6] == ("noise15", "noise25", "noise50", "haze", "defocus", "stripe") and "dim" in order[6:]
    items = DeMMIDataset(out, split=None, settings="noise15+dim")
    assert len(items) == 1
    item = items[0]
    assert item["setting"] == "noise15+dim"
    # the dataset's label order: TG-ECNet's six, then the atoms its settings use (whatever else is registered)
    assert items.label_order == ("noise15", "noise25", "noise50", "haze", "defocus", "stripe", "dim")
    want = [1.0 if name in ("noise15", "dim") else 0.0 for name in items.label_order]
    assert item["atoms"].tolist() == want == atoms_vector("dim+noise15", items.label_order).tolist()


def test_contact_sheet_labels_the_new_atom(msrs_pair, dim):
    from demmi_rf.degradations.sheet import contact_sheet, describe_params  # noqa: PLC0415

    vis, ir = msrs_pair
    out = degrade(vis, ir, "noise25+dim", SEED, pair_id=PID)
    assert describe_params(out.params) == f"sigma=25 | dim g={out.params['dim']['gain']:.2f}"
    sheet = contact_sheet(vis, ir, ["clean", "dim", "noise25+dim"], SEED, pair_id=PID, thumb_width=64)
    plain = contact_sheet(vis, ir, ["clean", "clean", "clean"], SEED, pair_id=PID, thumb_width=64)
    assert sheet.shape[0] == plain.shape[0] and sheet.dtype == np.uint8 and not np.array_equal(sheet, plain)


def test_albumentations_transform_of_the_new_atom(msrs_pair, dim):
    A = pytest.importorskip("albumentations")
    from demmi_rf.albu import DemmiAtom, DemmiSetting, from_recipe  # noqa: PLC0415

    vis = np.ascontiguousarray(msrs_pair[0][:96, :128])
    one = A.Compose([DemmiAtom("dim", gain=(0.6, 0.7))], seed=3)(image=vis)["image"]
    again = A.Compose([DemmiAtom("dim", gain=(0.6, 0.7))], seed=3)(image=vis)["image"]
    assert one.dtype == np.uint8 and np.array_equal(one, again) and one.mean() < vis.mean() * 0.75
    chain = A.Compose([DemmiSetting("noise25+dim")], seed=3)(image=vis)["image"]
    assert chain.shape == vis.shape and not np.array_equal(chain, vis)
    assert isinstance(from_recipe("dim"), DemmiAtom)
    with pytest.raises(ValueError, match="outside the valid interval"):
        DemmiAtom("dim", gain=9.0)
    with pytest.raises(ValueError, match="no parameter"):
        DemmiAtom("dim", sigma=3.0)


def test_cascade_refuses_an_atom_without_restorer_and_uses_a_registered_one(msrs_pair, dim):
    from demmi_rf.baselines.cascade import cascade, known_atoms, register_restorer, unregister_restorer  # noqa: PLC0415
    from demmi_rf.baselines.pyramid import fuse_laplacian  # noqa: PLC0415

    vis, ir = (np.ascontiguousarray(a[:64, :80]) for a in msrs_pair)
    assert "dim" not in known_atoms()
    with pytest.raises(ValueError, match="no restoration for atom.*'dim'.*register_restorer"):
        cascade(vis, ir, ("dim",))
    calls = []

    def undim(image):
        return np.clip(image.astype(np.float32) / 0.7, 0, 255).astype(np.uint8)

    def brighten(image, spec, ranges):
        calls.append((spec.name, ranges))
        return undim(image)

    register_restorer("dim", brighten)
    try:
        assert "dim" in known_atoms()
        out = cascade(vis, ir, ("dim",), {"dim": {"gain": 0.7}})
        assert calls == [("dim", {"gain": 0.7})]
        assert np.array_equal(out, fuse_laplacian(undim(vis), ir))
    finally:
        unregister_restorer("dim")


# --- entry points ---------------------------------------------------------------------------------------------
GLOW = '''
from demmi_rf.degradations import STAGE_SENSOR, FIXED, AtomSpec, Param

def draw(stream, image, ranges, atom="glow"):
    return {"offset": float(ranges["offset"])}

def apply(image, stream=None, *, offset, inplace=False):
    import numpy as np
    return np.asarray(image, dtype=np.float32) + np.float32(offset)

SPEC = AtomSpec(name="glow", family="glow", modality="ir", stage=STAGE_SENSOR + 7,
                params=(Param("offset", FIXED, lo=-255.0, hi=255.0, default=10.0),), draw=draw, apply=apply,
                random_apply=False)
'''


def _fake_distribution(root: Path, entry_points: str) -> None:
    """A distribution installed only as a .dist-info folder with entry_points.txt, plus its module."""
    info = root / "demmi_glow_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demmi-glow-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (root / "glow_plugin.py").write_text(GLOW)


def test_entry_point_atoms_load_lazily_once(tmp_path, monkeypatch, tno_pair):
    _fake_distribution(tmp_path, f"""
        [{ENTRY_POINT_GROUP}]
        glow = glow_plugin:SPEC
        broken = glow_plugin:NO_SUCH_NAME
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("glow_plugin", None)
    fresh = Registry("test atoms", ENTRY_POINT_GROUP)  # lazily: nothing is loaded before the first lookup
    assert "glow_plugin" not in sys.modules
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "glow" in fresh
        assert [s.name for s in fresh.specs()] == ["glow"]
        assert len(fresh) == 1  # a second lookup loads nothing again
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "'broken'" in messages[0] and "NO_SUCH_NAME" in messages[0]
    assert len(fresh.plugin_errors) == 1

    # the toolkit's own registry: the entry point makes "glow" a valid atom of degrade() without any import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ATOMS.reload_plugins()
    try:
        vis, ir = tno_pair
        out = degrade(vis, ir, "glow", SEED, pair_id="tno/07")
        assert out.vis is vis and out.params == {"glow": {"offset": 10.0}}
        assert np.array_equal(out.ir, np.clip(ir.astype(np.int32) + 10, 0, 255).astype(np.uint8))
    finally:
        unregister_atom("glow")
        sys.modules.pop("glow_plugin", None)
