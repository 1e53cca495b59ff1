"""Citations and licence notes of the known public sources, copied into every dataset card.

Licence facts are as stated by each dataset's repository or page (``docs/reference/source-dataset-layouts.md``);
"not stated" means no licence was found, only a citation request. Check the original terms before
redistributing derived data.
"""

from __future__ import annotations

SOURCES: dict[str, dict[str, str]] = {
    "msrs": {
        "dataset": "MSRS (Multi-Spectral Road Scenarios)",
        "citation": "L. Tang, J. Yuan, H. Zhang, X. Jiang, J. Ma, PIAFusion: A progressive infrared and visible "
                    "image fusion network based on illumination aware, Information Fusion 83-84, 2022; "
                    "Q. Ha et al., MFNet, IROS 2017",
        "licence": "not stated (citation request only; github.com/Linfeng-Tang/MSRS); built from MFNet, "
                   "whose terms also apply",
    },
    "roadscene": {
        "dataset": "RoadScene",
        "citation": "H. Xu, J. Ma, Z. Le, J. Jiang, X. Guo, FusionDN, AAAI 2020; H. Xu et al., U2Fusion, "
                    "TPAMI 2020",
        "licence": "not stated (citation request; github.com/hanna-xu/RoadScene); frames from FLIR ADAS, whose "
                   "terms also apply",
    },
    "tno": {
        "dataset": "TNO Image Fusion Dataset",
        "citation": "A. Toet, The TNO multiband image data collection, Data in Brief 15, 2017",
        "licence": "reported CC BY 4.0 (figshare 1008029; verify)",
    },
    "llvip": {
        "dataset": "LLVIP",
        "citation": "X. Jia, C. Zhu, M. Li, W. Tang, W. Zhou, LLVIP: A visible-infrared paired dataset for "
                    "low-light vision, ICCV Workshops 2021",
        "licence": "NON-COMMERCIAL use only (Term of Use and License, github.com/bupt-ai-cz/LLVIP)",
    },
    "m3fd": {
        "dataset": "M3FD",
        "citation": "J. Liu et al., Target-aware dual adversarial learning and a multi-scenario multi-modality "
                    "benchmark to fuse infrared and visible for object detection (TarDAL), CVPR 2022",
        "licence": "not stated (repository code is GPL-3.0)",
    },
    "fmb": {
        "dataset": "FMB",
        "citation": "J. Liu et al., Multi-interactive feature learning and a full-time multi-modality benchmark "
                    "for image fusion and segmentation (SegMiF), ICCV 2023",
        "licence": "not stated",
    },
    "ems": {
        "dataset": "EMS",
        "citation": "X. Yi et al., Text-IF: Leveraging semantic text guidance for degradation-aware and "
                    "interactive image fusion, CVPR 2024",
        "licence": "must follow each source's licence (EMS README)",
    },
    "mfnet": {
        "dataset": "MFNet",
        "citation": "Q. Ha et al., MFNet: Towards real-time semantic segmentation for autonomous vehicles with "
                    "multi-spectral scenes, IROS 2017",
        "licence": "not stated",
    },
}

UNKNOWN = {
    "dataset": "unknown",
    "citation": "unknown source: add its citation to the dataset card before publishing",
    "licence": "unknown: check the source's terms",
}


def source_note(source: str) -> dict[str, str]:
    """Citation and licence note of a source name (``UNKNOWN`` for a user folder)."""
    return dict(SOURCES.get(source, UNKNOWN))
