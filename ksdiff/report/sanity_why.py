"""Why a metric cannot tell ground truth from a floor, from numbers the leaderboard already holds.

A sanity row that is not 'pass' says that the metric failed to separate ground
truth from a floor; ``explain`` adds, where the other metrics of the same clips
show it, what the metric is doing instead. One entry point, ``explain(metric,
floor, means)``, with ``means`` the per-(method, metric) clip means the sanity
table is built from. It returns '' when it has nothing measured to add; it never
guesses.

- BeatAlign: Bailando's score minus the chance-corrected score is the score's
  own chance level (the mean over the same motion against the clip's onsets
  shifted by >= 2 s, ksdiff.metrics.beat_chance). When ground truth's raw score
  sits at that level, the raw score measures the rate of onsets and motion
  beats, not their alignment.
- FDD: the static face's upper face is still, so its |FDD| is ground truth's own upper-face dynamics;
  against it, a floor's |FDD| says whether FDD had anything to measure (static) or whether the floor moves
  its upper face about as much as ground truth, at other times (mismatched).
- LSE-D against the static face: LSE-D is the level of the audio-video
  embedding distance at its best offset. A still face has no best offset (its
  LSE-C, the dip below the median distance, is near 0), yet its distance level
  can be as low as a moving face's, so LSE-D cannot rank it; LSE-C can.
"""
from __future__ import annotations

import pandas as pd

from ksdiff.metrics.registry import FDD, FDD_FLAME, GROUND_TRUTH


def _mean(means: dict, method: str, metric: str) -> float | None:
    s = means.get((method, metric))
    return None if s is None or len(s) == 0 else float(s.mean())


def explain(metric: str, floor: str, means: dict[tuple[str, str], pd.Series]) -> str:
    """A measured sentence on why ``metric`` does not separate ground truth from ``floor`` ('' if none)."""
    if metric == "beat_align":
        raw, corrected = _mean(means, GROUND_TRUTH, "beat_align"), _mean(means, GROUND_TRUTH, "beat_align_corrected")
        if raw is None or corrected is None:
            return ""
        return (f"ground truth's BeatAlign {raw:.3f} is {corrected:+.3f} from its own chance level {raw - corrected:.3f} "
                "(the same motion against the clip's speech onsets shifted by at least 2 s): with speech onsets this "
                "dense the raw score mostly counts how often onsets and motion beats occur")
    if metric in (FDD, FDD_FLAME):
        # The static face's upper face never moves, so its |FDD| is ground truth's own upper-face dynamics.
        own, here = _mean(means, "static", metric), _mean(means, floor, metric)
        if own is None or here is None:
            return ""
        if floor == "static":
            return (f"ground truth's own upper-face dynamics is {own:.3g} (the static face's FDD): the upper face "
                    "barely moves in these clips, so FDD has little to measure")
        return (f"|FDD| of {floor} is {here:.3g} against ground truth's own upper-face dynamics {own:.3g}: FDD compares "
                "how much the upper face moves, not when, and another clip's real motion moves about as much")
    if metric == "lse_d" and floor == "static":
        gd, fd = _mean(means, GROUND_TRUTH, "lse_d"), _mean(means, floor, "lse_d")
        gc, fc = _mean(means, GROUND_TRUTH, "lse_c"), _mean(means, floor, "lse_c")
        if None in (gd, fd, gc, fc):
            return ""
        return (f"the still face's distance level is as low as ground truth's (LSE-D {fd:.2f} vs {gd:.2f}) but flat "
                f"across offsets (LSE-C {fc:.2f} vs {gc:.2f}): LSE-D measures the level, not the dip at the right "
                "offset, so read LSE-C for sync")
    return ""
