"""demmi preview and the contact sheet: layout, that cells show the degraded pixels, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from demmi_cli.main import cli
from demmi_rf import degrade
from demmi_rf.degradations import sheet as sheet_mod
from demmi_rf.recipe import load_recipe

SEED = load_recipe().seed


def test_sheet_cells_show_exactly_the_degraded_pair(msrs_pair):
    vis, ir = msrs_pair
    settings = ["clean", "haze+noise25", "stripe"]
    s = sheet_mod.contact_sheet(vis, ir, settings, SEED, pair_id="msrs/00004N", thumb_width=160, columns=2)
    th = round(480 * 160 / 640)
    cell_w, cell_h = 2 * 160 + 3 * sheet_mod._GAP, th + sheet_mod._LABEL_H + 2 * sheet_mod._GAP
    assert s.dtype == np.uint8 and s.shape == (sheet_mod._TITLE_H + 2 * cell_h, 2 * cell_w, 3)
    for i, name in enumerate(["clean", "noise25+haze", "stripe"]):
        out = degrade(vis, ir, name, SEED, pair_id="msrs/00004N")
        x0, y0 = (i % 2) * cell_w + sheet_mod._GAP, sheet_mod._TITLE_H + (i // 2) * cell_h + sheet_mod._LABEL_H
        for j, img in enumerate((out.vis, out.ir)):
            x = x0 + j * (160 + sheet_mod._GAP)
            got = s[y0 + 20 : y0 + th, x : x + 160]  # below the VIS/IR tag
            np.testing.assert_array_equal(got, sheet_mod._thumb(img, 160)[20:])
    # the degraded modality is framed, the untouched one is not
    y_frame = sheet_mod._TITLE_H + sheet_mod._LABEL_H - 1
    vis_x = cell_w + sheet_mod._GAP + 10  # second cell (noise25+haze), VIS thumbnail
    assert tuple(s[y_frame, vis_x]) == sheet_mod._MARK
    assert tuple(s[y_frame, sheet_mod._GAP + 10]) != sheet_mod._MARK  # clean: no frame


def test_describe_params():
    text = sheet_mod.describe_params(
        {"noise50": {"sigma": 50.0}, "haze": {"beta": 1.234, "A": 31.6}, "defocus": {"radius": 4},
         "stripe": {"s": 5.55}}
    )
    assert text == "sigma=50 | haze b=1.23 A=32 | defocus r=4 | stripe s=5.5"
    assert sheet_mod.describe_params({}) == "no degradation"


def test_cli_writes_a_labelled_png(tmp_path):
    out = tmp_path / "sub" / "sheet.png"
    res = CliRunner().invoke(
        cli, ["preview", "--setting", "noise50+haze,stripe", "--setting", "defocus", "--pair", "tno/07",
              "--thumb-width", "120", "--out", str(out), "--mkdir"],
    )
    assert res.exit_code == 0, res.output
    assert "3 settings of tno/07" in res.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size[0] == 3 * (2 * 120 + 3 * sheet_mod._GAP)


def test_cli_defaults_to_every_recipe_setting_of_the_first_sample(tmp_path):
    out = tmp_path / "all.png"
    res = CliRunner().invoke(cli, ["preview", "--thumb-width", "64", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "16 settings of msrs/00004N" in res.output
    with Image.open(out) as im:
        rows = 4
        assert im.size[1] == sheet_mod._TITLE_H + rows * (48 + sheet_mod._LABEL_H + 2 * sheet_mod._GAP)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--setting", "noise50+fog"], "unknown atom 'fog'"),
        (["--setting", "noise15+noise25"], "one noise level"),
        (["--pair", "msrs/nope"], "no pair 'msrs/nope'"),
        (["--recipe", "no-such-recipe"], "unknown recipe"),
    ],
)
def test_cli_errors_are_clear(tmp_path, args, fragment):
    res = CliRunner().invoke(cli, ["preview", *args, "--out", str(tmp_path / "x.png")])
    assert res.exit_code != 0
    assert fragment in res.output
    assert not (tmp_path / "x.png").exists()
