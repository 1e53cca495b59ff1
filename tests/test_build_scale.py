"""The streamed end of a build (``demmi_rf.builder.collect``, issue 16 section 4) gives the bytes of the in-memory path.

The in-memory path (``rows_to_frame`` -> ``manifest_bytes``, ``content_hash`` of the frame, ``count_samples``,
``sources_digest`` of all rows) is kept in the library and is the reference here: on a real build (rows read back
from the shards' ``/meta/result``) and on crafted rows whose columns pandas types differently chunk by chunk
(integers next to missing values, mixed numbers and words, booleans, integers beyond int64, non-ASCII ids),
with shards arriving out of order (each written as its own CSV chunk) and a merge fan-in of 2 (several merge passes).
No timing here: the scaling figures are ``benchmarks/bench_scale.py``'s.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from demmi_rf import SPEC_VERSION
from demmi_rf.builder import BuildError
from demmi_rf.builder.collect import ManifestCollector
from demmi_rf.builder.driver import sources_digest
from demmi_rf.errors import DatasetError
from demmi_rf.store import runs
from demmi_rf.store.card import count_samples
from demmi_rf.store.checksums import bytes_sha256
from demmi_rf.store.identity import content_hash
from demmi_rf.store.manifest import manifest_bytes, rows_to_frame
from demmi_rf.store.shard import open_shard, read_result

from .test_build import SMALL_SETTINGS, small_dataset, small_recipe  # noqa: F401 - fixtures


def in_memory(rows: list[dict], settings, recipe_hash: str, spec: str) -> dict:
    """What the driver computed before streaming (all rows in memory)."""
    frame = rows_to_frame(rows)
    data = manifest_bytes(frame)
    per_source: dict[str, set[str]] = {}
    for row in rows:
        per_source.setdefault(row["source"], set()).add(row["pair_id"])
    return {"manifest": data, "sha256": bytes_sha256(data), "content_hash": content_hash(frame, recipe_hash, spec),
            "counts": count_samples(rows, tuple(settings)), "sources": sources_digest(rows),
            "per_source": {k: len(v) for k, v in per_source.items()},
            "dtypes": [str(t) for t in frame.dtypes], "columns": list(frame.columns)}


def streamed(folder: Path, shards: list[tuple[str, list[dict]]], settings, recipe_hash: str, spec: str,
             order: list[int] | None = None) -> tuple[dict, list[str]]:
    """The collector's results for ``shards`` (added in ``order``, finished in plan order) and the names left
    in ``folder`` afterwards."""
    with ManifestCollector(folder / "manifest.csv", settings) as col:
        for k in order if order is not None else range(len(shards)):
            name, rows = shards[k]
            result = {"file": name, "rows": [dict(r) for r in rows], "pairs": [{"pair_id": "p"}] * 3}
            col.add(result)
            assert "rows" not in result and result["n_rows"] == len(rows)
            assert "pairs" not in result and result["n_pairs"] == 3
        done = col.finish([name for name, _ in shards], recipe_hash, spec)
        got = {"manifest": done.manifest_tmp.read_bytes(), "sha256": done.manifest_sha256,
               "content_hash": done.content_hash, "counts": done.counts, "sources": done.sources_digest,
               "per_source": done.per_source, "dtypes": [str(t) for t in done.columns.dtypes],
               "columns": list(done.columns.columns)}
        assert done.manifest_bytes == len(got["manifest"]) and done.rows == sum(len(r) for _, r in shards)
    return got, sorted(p.name for p in folder.iterdir())


def test_streamed_manifest_equals_in_memory_path_on_a_build(small_dataset, tmp_path):  # noqa: F811
    card = json.loads((small_dataset / "dataset.json").read_text())
    shards = []
    for entry in card["shards"]:  # the rows each shard handed the driver, in plan order
        with open_shard(small_dataset / entry["file"]) as h5:
            shards.append((entry["file"], read_result(h5, entry["file"])["rows"]))
    rows = [r for _, rs in shards for r in rs]
    assert len(rows) == 9 * len(SMALL_SETTINGS)
    settings = card["recipe"]["settings"]
    ref = in_memory(rows, settings, card["recipe_hash"], SPEC_VERSION)
    got, left = streamed(tmp_path, shards, settings, card["recipe_hash"], SPEC_VERSION,
                         order=list(reversed(range(len(shards)))))
    assert got == ref
    assert left == []  # spill files, merge runs and the unused temporary manifest are gone
    # and the build wrote exactly those bytes and hashes
    assert (small_dataset / "manifest.csv").read_bytes() == ref["manifest"]
    assert card["manifest"]["sha256"] == ref["sha256"] and card["content_hash"] == ref["content_hash"]
    assert card["counts"] == ref["counts"] and card["sources"]["files_sha256"] == ref["sources"]
    assert {d["source"]: d["pairs"] for d in card["sources"]["datasets"]} == ref["per_source"]


def crafted_row(i: int, rnd: random.Random) -> dict:
    setting = rnd.choice(["clean", "stripe", "haze", "extra"])
    params: dict = {}
    if setting == "stripe":  # ints that the whole column turns into floats (other rows lack them)
        params = {"stripe": {"s": rnd.choice([3, 4.5, np.float64(2.25)]), "flag": rnd.choice([True, False]),
                             "n": rnd.choice([1, 2, 3]), "big": 2**63 + 5 if i % 7 == 0 else 1}}
    elif setting == "haze":  # a word next to numbers, a list, a None
        params = {"haze": {"beta": rnd.random(), "pseudo_depth": rnd.choice(["luminance", 0.5, 3]),
                           "taps": [1, 2.5], "none": None if rnd.random() < 0.5 else 1.5}}
    pair = f"src{i % 3}/p{i // 2:04d}" + ("-b" if i % 5 == 0 else "é" if i % 5 == 1 else "")
    return {"sample_id": f"{pair}@{setting}{i}", "split": rnd.choice(["train", "test"]), "pair_id": pair,
            "source": f"src{i % 3}", "stem": "s", "setting": setting, "atoms": (setting,),
            "changes_vis": bool(i % 2), "changes_ir": False, "height": np.int64(48), "width": 64,
            "vis_channels": 3, "shard": "shards/x.h5", "vis_path": "a,b", "ir_path": 'q"x', "vis_clean_path": "c",
            "ir_clean_path": "d", "sha256_vis": f"{i:064x}", "sha256_ir": "b" * 64, "sha256_vis_clean": "c" * 64,
            "sha256_ir_clean": "d" * 64, "seed": 2**62 + i, "seed_material_vis": "m\nn", "seed_material_ir": "",
            "params": params, "ir_file": f"ir/{i // 2}.png", "vis_file": f"vi/{i // 2}.png",
            "ir_file_sha256": "e" * 64}


@pytest.mark.parametrize("trial", range(8))
def test_streamed_manifest_equals_in_memory_path_on_crafted_rows(trial, tmp_path, monkeypatch):
    rnd = random.Random(trial)
    monkeypatch.setattr(runs, "FAN_IN", rnd.choice([2, 3]))  # several merge passes
    rows = [crafted_row(i, rnd) for i in range(rnd.choice([1, 40, 200]))]
    shards: list[tuple[str, list[dict]]] = []
    for row in rows:  # a pair's rows stay in one shard, as in a build
        if not shards or (row["pair_id"] != shards[-1][1][-1]["pair_id"] and rnd.random() < 0.3):
            shards.append((f"shards/s{len(shards)}.h5", []))
        shards[-1][1].append(row)
    order = list(range(len(shards)))
    rnd.shuffle(order)  # results arrive in completion order
    settings = ("clean", "stripe", "haze")
    ref = in_memory(rows, settings, "r" * 64, "1")
    got, left = streamed(tmp_path, shards, settings, "r" * 64, "1", order)
    assert got == ref and left == []


def test_no_samples_gives_the_header_only_manifest(tmp_path):
    got, left = streamed(tmp_path, [("shards/a.h5", [])], ("clean",), "r" * 64, "1")
    ref = in_memory([], ("clean",), "r" * 64, "1")
    assert got == ref and got["manifest"].startswith(b"sample_id,split,") and left == []


def test_duplicate_sample_across_shards_is_refused(tmp_path):
    rnd = random.Random(0)
    row = crafted_row(3, rnd)
    with pytest.raises(DatasetError, match="more than once"):
        streamed(tmp_path, [("shards/a.h5", [row]), ("shards/b.h5", [dict(row)])], ("clean",), "r" * 64, "1")
    assert list(tmp_path.iterdir()) == []


def test_temporary_files_are_new_files_never_followed_links(tmp_path):
    col = ManifestCollector(tmp_path / "manifest.csv", ("clean",))
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    col._spill_path.symlink_to(victim)  # a link planted under the spill file's name
    with col, pytest.raises(BuildError, match="cannot write the manifest rows"):
        col.add({"file": "shards/a.h5", "rows": [crafted_row(0, random.Random(0))]})
    assert victim.read_bytes() == b"keep"


@pytest.mark.parametrize("block", [1, 4, 1 << 16])
def test_content_hash_in_blocks_is_the_documented_text(small_dataset, block, monkeypatch):  # noqa: F811
    from demmi_rf.store import identity, read_manifest

    frame = read_manifest(small_dataset / "manifest.csv")
    card = json.loads((small_dataset / "dataset.json").read_text())
    head = [identity.CONTENT_FORMAT, f"spec_version {SPEC_VERSION}", f"recipe_hash {card['recipe_hash']}"]
    whole = ("\n".join([*head, *identity._sample_lines(frame)]) + "\n").encode("utf-8")  # one piece, sorted
    monkeypatch.setattr(identity, "CONTENT_BLOCK", block)
    assert identity.content_text(frame, card["recipe_hash"], SPEC_VERSION) == whole
    assert identity.content_hash(frame.iloc[::-1], card["recipe_hash"], SPEC_VERSION) == card["content_hash"]


def test_pool_hands_each_result_over_as_its_shard_finishes(tmp_path, small_recipe):  # noqa: F811
    """With a process pool, the driver gets a shard's result (and its progress event) while other shards are
    still running, not once every shard has finished: otherwise it would hold every shard's rows at once."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ds"
    code = (f"from pathlib import Path\n"
            f"from demmi_rf.builder import build_dataset\n"
            f"seen = []\n"
            f"def progress(kind, data):\n"
            f"    if kind == 'shard' and not seen:\n"
            f"        seen.append(len(list(Path({str(out)!r}, 'shards').glob('*.h5'))))\n"
            f"r = build_dataset({str(out)!r}, recipe={str(small_recipe)!r}, settings=['clean'], workers=2,\n"
            f"                  progress=progress)\n"
            f"print(seen[0], len(r.built))\n")
    env = {**os.environ, "DEMMI_BUILD_TEST_PAUSE": "0.5"}  # each pair takes at least 0.5 s
    done = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    finished_at_first_event, built = map(int, done.stdout.split())
    assert built == 5  # 9 embedded pairs, 2 per shard
    assert finished_at_first_event < built
