"""One module per metric family, each with one entry point ``score(clip: ClipInputs) -> list[Row]``.

ksdiff.evaluate loads a clip's inputs once (ksdiff.metrics.clip.ClipInputs) and calls every scorer of
``SCORERS`` in this order; a scorer returns no rows for a clip it does not apply to (LVE for ground truth,
LSE without SyncNet weights) and a row with a reason for a value it cannot give. Adding a metric is one new
module here, listed below, with its names declared in ksdiff.metrics.registry.
"""
from __future__ import annotations

from ksdiff.metrics.scorers import beat, cpbd, csim, diversity, efid, fdd, fid, fvd, lmd, lpips, lse, lve, mod, psnr, ssim

# The video metrics last: they share each sample's frames (opened once, released when the clip is done).
SCORERS = (lve, diversity, beat, lse, fdd, mod, efid, psnr, ssim, cpbd, lmd, lpips, csim, fid, fvd)
