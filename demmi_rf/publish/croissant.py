"""The Croissant metadata file ``croissant.json`` of a built dataset (MLCommons Croissant 1.1, JSON-LD).

Croissant (https://docs.mlcommons.org/croissant/docs/croissant-spec-1.1.html) describes a dataset in three
layers, all written here from the card and the manifest's columns:

* metadata: name, description, licence notes of every source, citations, version, and the content hash
  (as ``identifier``; see ``docs/dataset-layout.md`` section 4);
* resources (``distribution``): the card ``dataset.json`` and the manifest ``manifest.csv`` as ``FileObject``
  with their sha256, and the HDF5 shards as a ``FileSet`` (``shards/*.h5``, ``application/x-hdf5``);
* ``recordSet`` ``samples``: one field per manifest column, read from ``manifest.csv`` (``extract.column``),
  typed (``sc:Text``, ``sc:Integer``, ``sc:Boolean``, ``sc:Float``); and ``recordSet`` ``arrays``: the four
  uint8 arrays of a sample (``vis``, ``ir``, ``vis_clean``, ``ir_clean``) as array fields (``isArray``,
  ``arrayShape`` ``-1,-1,-1`` for VIS, ``-1,-1`` for IR) stored in the shards at the HDF5 path named by the
  manifest column of the same name plus ``_path``.

The document holds no timestamps, so rewriting it for the same card gives the same bytes. It is validated in
the tests with the ``mlcroissant`` package (``mlcroissant.Dataset(jsonld=...)``), which also reads the
``samples`` records back from the CSV.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..store.layout import CARD, MANIFEST, SHARD_DIR, SHARD_EXT

CROISSANT = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"

#: the JSON-LD context of Croissant 1.1, as ``mlcroissant`` writes it
CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "arrayShape": "cr:arrayShape", "citeAs": "cr:citeAs", "column": "cr:column", "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5",
    "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}

_INTEGER = {"height", "width", "vis_channels", "seed"}
_BOOLEAN = {"changes_vis", "changes_ir"}
_DESCRIPTIONS = {
    "sample_id": "<pair id>@<canonical setting>, the sample's identifier",
    "split": "train or test (split by pair)",
    "pair_id": "<source>/<stem>", "source": "canonical source dataset name", "stem": "file stem in the source",
    "setting": "canonical degradation setting (clean for none)",
    "atoms": "JSON list of the setting's atoms in canonical order",
    "changes_vis": "whether the setting degrades VIS", "changes_ir": "whether the setting degrades IR",
    "height": "image height in pixels", "width": "image width in pixels",
    "vis_channels": "3 for RGB VIS, 1 for gray", "shard": "HDF5 shard holding the sample, relative to the root",
    "seed": "the recipe seed", "params": "JSON of every drawn degradation parameter, {atom: {name: value}}",
    "ir_file": "source IR image, relative to the source root", "vis_file": "source VIS image, relative to the root",
}
ARRAY_FIELDS = (
    ("vis", "degraded VIS (the clean VIS when the setting leaves VIS unchanged), uint8 HxWx3 RGB or HxW gray",
     "-1,-1,-1"),
    ("ir", "degraded IR (the clean IR when unchanged), uint8 HxW", "-1,-1"),
    ("vis_clean", "clean VIS ground truth, uint8 HxWx3 RGB or HxW gray", "-1,-1,-1"),
    ("ir_clean", "clean IR ground truth, uint8 HxW", "-1,-1"),
)


def column_types(manifest: Any) -> list[tuple[str, str]]:
    """``(column, Croissant data type)`` of every column of a manifest DataFrame, in file order: the fixed
    integer and boolean columns by name, a drawn parameter (``<atom>.<name>``) ``sc:Float`` when every value
    is numeric (``haze.pseudo_depth`` is a word), everything else ``sc:Text``."""
    import pandas as pd  # noqa: PLC0415

    out = []
    for column in manifest.columns:
        if column in _INTEGER:
            kind = "sc:Integer"
        elif column in _BOOLEAN:
            kind = "sc:Boolean"
        elif "." in column and pd.api.types.is_numeric_dtype(manifest[column]):
            kind = "sc:Float"
        else:
            kind = "sc:Text"
        out.append((str(column), kind))
    return out


def _column_description(column: str) -> str:
    if column in _DESCRIPTIONS:
        return _DESCRIPTIONS[column]
    if column.startswith("sha256_"):
        return f"sha256 of the C-order uint8 bytes of the {column[7:]} array"
    if column.endswith("_path"):
        return f"HDF5 path of the {column[:-5]} array inside the shard"
    if column.startswith("seed_material_"):
        return f"string hashed into the {column[14:].upper()} generator (empty when unchanged)"
    if "." in column:
        atom, name = column.split(".", 1)
        return f"drawn parameter {name} of atom {atom} (empty when the setting lacks the atom)"
    return column


def _field_id(record_set: str, column: str) -> str:
    return f"{record_set}/{column}"


def croissant_document(card: dict[str, Any], card_sha256: str,
                       manifest_columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The Croissant JSON-LD document (a dict) of a dataset with ``card``, whose ``dataset.json`` has sha256
    ``card_sha256`` and whose manifest has ``manifest_columns`` (``(name, data type)`` in file order, from
    :func:`column_types`)."""
    datasets = card.get("sources", {}).get("datasets", [])
    licences = [f"{d['source']}: {d['licence']}" for d in datasets]
    cites = [f"{d['source']}: {d['citation']}" for d in datasets]
    counts = card.get("counts", {})
    recipe = card.get("recipe", {})
    description = (
        f"DeMMI-RF degraded infrared/visible image fusion benchmark built with recipe {card['name']} "
        f"(spec v{card.get('spec_version')}, {len(recipe.get('settings', []))} degradation settings, seed "
        f"{recipe.get('seed')}): {counts.get('samples', '?')} samples of {counts.get('pairs', '?')} registered "
        f"IR/VIS pairs, stored as HDF5 shards with a CSV manifest. Content hash {card.get('content_hash')} "
        "(verify with 'demmi verify'). Licences of the sources: " + "; ".join(licences or ["none recorded"])
    )
    shard_fields = "shards"
    distribution: list[dict[str, Any]] = [
        {"@type": "cr:FileObject", "@id": "card", "name": "card", "contentUrl": CARD,
         "encodingFormat": "application/json", "sha256": card_sha256,
         "description": "the dataset card (counts, recipe, sources, shard checksums)"},
        {"@type": "cr:FileObject", "@id": "manifest", "name": "manifest",
         "contentUrl": card.get("manifest", {}).get("file", MANIFEST), "encodingFormat": "text/csv",
         "sha256": card.get("manifest", {}).get("sha256", ""),
         "description": "one row per sample (docs/dataset-layout.md section 5)"},
        {"@type": "cr:FileSet", "@id": shard_fields, "name": shard_fields, "encodingFormat": "application/x-hdf5",
         "includes": f"{SHARD_DIR}/*{SHARD_EXT}",
         "description": "HDF5 shards: /pairs/<pair id>/{vis,ir} (clean) and /samples/<sample id>/{vis,ir} "
                        f"(degraded); {len(card.get('shards', []))} file(s), sha256 of each in dataset.json"},
    ]
    fields = [{
        "@type": "cr:Field", "@id": _field_id("samples", c), "name": c, "description": _column_description(c),
        "dataType": kind, "source": {"fileObject": {"@id": "manifest"}, "extract": {"column": c}},
    } for c, kind in manifest_columns]
    array_fields = [{
        "@type": "cr:Field", "@id": _field_id("arrays", name), "name": name,
        "description": f"{text}; stored in the shard named by the manifest's 'shard' column at the HDF5 path "
                       f"of its '{name}_path' column",
        "dataType": "sc:Integer", "isArray": True, "arrayShape": shape,
        "source": {"fileSet": {"@id": shard_fields}, "extract": {"fileProperty": "content"}},
    } for name, text, shape in ARRAY_FIELDS]
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": card["name"],
        "description": description,
        "version": str(card.get("toolkit_version", "0.0.0")),
        "identifier": f"sha256:{card.get('content_hash', '')}",
        "license": licences or ["unknown"],
        "citeAs": ("Benchmark: TG-ECNet (ICML 2025), DeMMI-RF v1. Sources: " + "; ".join(cites)),
        "url": "https://github.com/demmi-rf/demmi-rf",
        "keywords": ["image fusion", "infrared", "visible", "degradation", "benchmark"],
        "distribution": distribution,
        "recordSet": [
            {"@type": "cr:RecordSet", "@id": "samples", "name": "samples",
             "description": "one record per sample (the manifest)", "key": {"@id": "samples/sample_id"},
             "field": fields},
            {"@type": "cr:RecordSet", "@id": "arrays", "name": "arrays",
             "description": "the uint8 pixel arrays of each sample, in the HDF5 shards", "field": array_fields},
        ],
    }


def croissant_bytes(card: dict[str, Any], card_sha256: str, manifest_columns: Sequence[tuple[str, str]]) -> bytes:
    """Canonical bytes of :func:`croissant_document` (two-space indent, key order kept, UTF-8, final newline)."""
    doc = croissant_document(card, card_sha256, manifest_columns)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
