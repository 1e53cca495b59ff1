"""Publishing a benchmark: dataset cards (README + Croissant), exports for other loaders, the static web report.

* :mod:`.card_readme`, :mod:`.croissant`, :mod:`.card_files` — ``README.md`` (Hugging Face / TFDS style) and
  ``croissant.json`` (MLCommons Croissant 1.1), written by every ``demmi build`` and by ``demmi card``;
* :mod:`.exports` — ``demmi export --format png|webdataset|hf``;
* :mod:`.report` and its helpers — ``demmi report``, a static site (leaderboard, plots, visual comparison,
  dataset page) that opens from ``file://``.

Documentation: ``docs/publishing.md``. Nothing here imports torch; the exports' optional libraries are imported
only by the tests (the files are written with the standard library, Pillow and pyarrow).
"""

from __future__ import annotations

from .card_files import regenerate_cards, write_card_files

__all__ = ["regenerate_cards", "write_card_files"]
