"""The report's rows for the weights of FID, FVD, LPIPS and CSIM (ksdiff.metrics.weighted): the file and its
sha256 that scored each metric, a warning when methods were scored with different files, or why it is not
scored (no weights configured: never a number from random or downloaded weights)."""
from __future__ import annotations

from ksdiff.metrics.weighted import KEYS, LABELS, WeightedModels


def weighted_rows(attrs_list: list[dict]) -> list[dict]:
    """[{name, value}] rows for the report's weights table, one or more per weight-based metric."""
    rows = []
    for name in KEYS:
        recs = [(a.get("weighted") or {}).get(name) or {} for a in attrs_list]
        used = {(r["sha256"], r["weights"]): r for r in recs if r.get("scored")}
        label = f"{LABELS[name]} weights"
        if not used:
            rows.append({"name": label, "value": WeightedModels.reason(name)})
            continue
        if len(used) > 1:
            label += f" — WARNING: methods scored with {len(used)} different files, {LABELS[name]} values are not comparable"
        for (sha, path), r in sorted(used.items()):
            rows.append({"name": label, "value": f"{path} (sha256 {sha})"})
            if name == "lpips":
                rows.append({"name": "LPIPS linear layers (lpips package)",
                             "value": f"{r['linear_layers']} (sha256 {r['linear_layers_sha256']})"})
        unscored = sorted(a.get("method", "?") for a, r in zip(attrs_list, recs) if r and not r.get("scored"))
        if unscored:
            rows.append({"name": f"{LABELS[name]} not scored for", "value": ", ".join(unscored)})
    return rows
