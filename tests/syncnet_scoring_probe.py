"""SyncNet LSE scoring in a fresh interpreter under one numerics mode; print JSON.

    python tests/syncnet_scoring_probe.py pinned|fast

Run by tests/test_syncnet_lowered.py with other CPU settings in the environment (each library reads its
own once, when it loads). Prints the sha256 of the video and audio embeddings lse() computes for seeded
random crops, audio and weights, which path scored the video, and what ran (ksdiff.numerics.describe).
"""
import hashlib
import json
import sys

from ksdiff import numerics

numerics.pin(sys.argv[1])  # before numpy and torch load

import numpy as np  # noqa: E402
import torch  # noqa: E402

numerics.torch_settings(sys.argv[1])

from ksdiff.metrics import syncnet as sn  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    model = sn.build_syncnet().eval()
    rng = np.random.default_rng(0)
    n_win = 6
    crops = rng.integers(0, 256, (n_win + 4, 224, 224, 3), dtype=np.uint8)
    wav = (0.2 * rng.standard_normal((n_win + 5) * sn.SAMPLES_PER_FRAME)).astype(np.float32)
    video = sn.embed_video(model, crops, n_win)
    audio = sn.embed_audio(model, sn.syncnet_mfcc(wav), n_win)
    out = {name: hashlib.sha256(t.numpy().tobytes()).hexdigest() for name, t in (("video", video), ("audio", audio))}
    out["lowered"] = sn.pinned_cpu(torch.device("cpu"))
    out["numerics"] = numerics.describe()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
