"""The leaderboard's families: in which order their tables come, and which metric ranks each.

Which family a metric belongs to is the registry's (ksdiff.metrics.registry.MetricSpec.family); this module
is the one place that says how the report lays the families out: ``FAMILY_ORDER`` (the order of the tables)
and ``PRIMARY`` (the metric that ranks a family's methods, then the ones to fall back on). A family the
registry holds but these do not name still gets its table, after the named ones, ranked by its first metric
in the registry, and its caption says that no primary metric is declared for it.
"""
from __future__ import annotations

from ksdiff.metrics.registry import (BY_NAME, CSIM, EFID, FDD, FDD_FLAME, FID, FVD, LPIPS, LVE, LVE_FLAME, LVE_FLAME_SQ,
                                     LVE_SQ, MOD, PSNR, SSIM)

OTHER = "other"  # the family of a metric the registry does not know (a metrics table from a newer ksdiff)

# What a talking-head paper's reader looks at first (is the mouth in sync, is it the right shape), then the
# head, the rest of the face, the expression statistics, the pixels and who it looks like.
FAMILY_ORDER = ("lip sync", "lip shape", "head motion", "upper face", "expression distribution", "video fidelity",
                "identity")

# family -> its ranking metrics in order of preference: the first one that ranks at least one method and is
# not flagged by the sanity check ranks the family (ksdiff.report.sanity.flagged: a metric that cannot tell
# ground truth from the floors cannot order methods either); if all are flagged, the first one scored ranks
# it and the caption warns. A metric not named here never ranks a family that has a named one scored.
PRIMARY: dict[str, tuple[str, ...]] = {
    # LSE-C (Sync-C): SyncNet's confidence, the sync number Wav2Lip, SadTalker, Hallo and LatentSync lead with;
    # LSE-D's scale is the embedding's. The AV offset says where sync is, not how good.
    "lip sync": ("lse_c", "lse_d"),
    # LVE as FaceFormer defines it (the l2 variant): the lip error every 3D speech-driven paper ranks by, on
    # landmarks, else on FLAME meshes; the squared variants order methods the same way per frame but weight
    # large errors more; MOD is ksdiff's own definition (ksdiff-mod-1), so it ranks only without any LVE.
    "lip shape": (LVE, LVE_FLAME, LVE_SQ, LVE_FLAME_SQ, MOD),
    # Chance-corrected BeatAlign: whether the head moves with the speech, without the raw score's dependence on
    # how dense the speech onsets are; raw BeatAlign next; temporal diversity (how much the head moves, against
    # ground truth's own amount) last: it says nothing about timing.
    "head motion": ("beat_align_corrected", "beat_align", "temporal_diversity"),
    # FDD on landmarks, else on FLAME meshes (CodeTalker's definition either way).
    "upper face": (FDD, FDD_FLAME),
    # E-FID is the family's only metric.
    "expression distribution": (EFID,),
    # FID first: the fidelity number talking-head papers lead with (Hallo, Sonic, StableAvatar); set-level, from
    # the user's Inception weights. Then FVD (temporal), LPIPS (paired, perceptual), and the paired PSNR and
    # SSIM, which need no weights, for runs without any.
    "video fidelity": (FID, FVD, LPIPS, PSNR, SSIM),
    # CSIM (ArcFace cosine similarity to the recorded video) is the family's only metric.
    "identity": (CSIM,),
}


def family_of(metric: str) -> str:
    spec = BY_NAME.get(metric)
    return spec.family if spec else OTHER


def ordered(families) -> list[str]:
    """FAMILY_ORDER's families first, then the others alphabetically (OTHER last)."""
    fams = set(families)
    rest = sorted(fams - set(FAMILY_ORDER) - {OTHER})
    return [f for f in FAMILY_ORDER if f in fams] + rest + ([OTHER] if OTHER in fams else [])


def title(family: str) -> str:
    return family[:1].upper() + family[1:]


def choose_primary(family: str, rankable: list[str], flags: dict, header) -> tuple[str | None, str]:
    """(the metric that ranks ``family``, why it is not the declared one: '' when it is).

    rankable: the family's metrics, in registry order, that give at least one method a ranking key.
    flags: metric -> (verdict, reason) of metrics the sanity check flags. header: metric -> column head.
    """
    declared = PRIMARY.get(family, ())
    candidates = [m for m in declared if m in rankable] or list(rankable)  # undeclared ones only without a declared one
    if not candidates:
        return None, "no method has a value that can be ranked"
    clean = [m for m in candidates if m not in flags]
    pick = clean[0] if clean else candidates[0]
    why = []
    if pick not in declared:
        why.append(("no primary metric is declared for this family (ksdiff.report.families.PRIMARY)" if not declared
                    else "none of the family's declared ranking metrics has a value") + ": its first metric in the registry")
    for m in declared:
        if m == pick:
            break
        if m not in rankable:
            if m == declared[0]:  # the later fall-backs are often simply another mesh's metric
                why.append(f"not {header(m)}, the family's primary metric: no method has a value of it")
        elif m in flags:
            why.append(f"not {header(m)}: {flags[m][0]} in the sanity check")
    if not clean:
        why.append(f"⚠ {header(pick)} is {flags[pick][0]} in the sanity check, so this order is not evidence")
    return pick, "; ".join(why)
