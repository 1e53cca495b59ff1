"""RGB to gray conversion of the evaluation protocol (benchmark spec section 7): MATLAB ``rgb2gray``.

Defined once in :mod:`demmi_rf.color` (numpy only, shared with the Dataset and the baselines); re-exported here.
"""

from __future__ import annotations

from ..color import RGB2GRAY_WEIGHTS, rgb2gray

__all__ = ["RGB2GRAY_WEIGHTS", "rgb2gray"]
