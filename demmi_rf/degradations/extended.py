"""The atoms beyond v1 (issue 14 section 2); importing this module registers them all.

VIS: ``lowlight`` and ``overexposure`` (family ``illumination``), ``motion``, ``rain``, ``jpeg``; IR:
``lowcontrast``, ``ir_noise``, ``stripe_gain`` (family ``stripe``). Each is defined, documented and registered in
its own module (:mod:`.lowlight`, :mod:`.exposure`, :mod:`.motion`, :mod:`.rain`, :mod:`.jpeg`,
:mod:`.ir_contrast`, :mod:`.ir_noise`, :mod:`.ir_stripe_gain`); ``docs/degradations.md`` section 7.

They are not imported by :mod:`demmi_rf.degradations` itself: registering them there would append eight
entries to the model's label vector and the list of valid atoms of every v1 user. A process that wants them
imports this module (or the package declares it as a ``demmi_rf.atoms`` entry point).
"""

from __future__ import annotations

from . import exposure, ir_contrast, ir_noise, ir_stripe_gain, jpeg, lowlight, motion, rain

#: the specs, VIS then IR
SPECS = (lowlight.SPEC, exposure.SPEC, motion.SPEC, rain.SPEC, jpeg.SPEC, ir_contrast.SPEC, ir_noise.SPEC,
         ir_stripe_gain.SPEC)
NAMES = tuple(s.name for s in SPECS)

__all__ = ["SPECS", "NAMES"]
