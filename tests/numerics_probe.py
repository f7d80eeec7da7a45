"""Train a tiny SyncNet expert and a tiny KSDiff in a fresh interpreter under one numerics mode; print JSON.

    python tests/numerics_probe.py pinned|fast

Run by tests/test_numerics.py with other CPU settings in the environment (each library reads its own
once, when it loads, so every setting needs its own process). Prints the sha256 of each trained
state_dict (float32 tensors in key order) and what ran (ksdiff.numerics.describe).
"""
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from ksdiff import numerics

numerics.pin(sys.argv[1])  # before numpy and torch load

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fabricate import fabricate_with_stats, tiny_model_cfg  # noqa: E402

from ksdiff import config  # noqa: E402
from ksdiff.metrics.syncnet_train import ExpertConfig, synthetic_sync_clips, train_expert  # noqa: E402
from ksdiff.training.loop import train  # noqa: E402


def state_sha256(state: dict) -> str:
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(v.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    out = {}
    expert, _ = train_expert(synthetic_sync_clips(n_clips=3, n_frames=40, seed=0),
                             # batch 8: the audio stream sees 16 windows, the batch at which torch would pick NNPACK
                             ExpertConfig(steps=3, batch_size=8, log_every=1000))
    out["expert"] = state_sha256(expert.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        results = fabricate_with_stats(Path(tmp) / "results")
        cfg = config.defaults(model=tiny_model_cfg(), numerics=sys.argv[1], train=dict(
            steps=6, batch_size=4, val_every=6, ckpt_every=6, log_every=3, warmup_steps=2, lr=1e-3, num_threads=1))
        model = Path(tmp) / "m" / "model.pt"
        train(cfg, str(results), str(model))
        out["model"] = state_sha256(torch.load(model, map_location="cpu", weights_only=True)["model"])
    out["numerics"] = numerics.describe()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
