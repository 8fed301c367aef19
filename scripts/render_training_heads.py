"""Render a training set of procedural heads spread over all 200 identities, for CPU training runs.

    python scripts/render_training_heads.py OUT VARIANTS RES NUM_RANDOM
    python scripts/render_training_heads.py data/heads64 6 64 4      # 1,200 subjects, 10 views each

Subjects are train indices ``identity * 50 + variant`` for every identity and variants ``0 .. VARIANTS-1``
(``facelift synth heads`` renders contiguous index ranges, i.e. few identities), each rendered with 2 x 2
supersampling from the six FaceLift views plus ``NUM_RANDOM`` random views, in the ``facelift synth``
layout (``OUT/train/head_XXXXXX``). Two processes; subjects already on disk are skipped (resumable).
"""
import sys, time, torch
from concurrent.futures import ProcessPoolExecutor
from facelift.synthetic.dataset import render_subject, write_subject, _write_manifest
from pathlib import Path

OUT, VARIANTS, RES, NRAND = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def job(index):
    torch.set_num_threads(1)
    folder = OUT / "train" / f"head_{index:06d}"
    if folder.exists():
        return index
    write_subject(OUT, render_subject("heads", index, "train", resolution=RES, num_random=NRAND, supersample=2))
    return index

if __name__ == "__main__":
    indices = [i * 50 + v for v in range(VARIANTS) for i in range(200)]
    start = time.time()
    with ProcessPoolExecutor(2) as pool:
        for n, _ in enumerate(pool.map(job, indices, chunksize=8)):
            if n % 200 == 0:
                print(n, round(time.time() - start, 1), flush=True)
    _write_manifest(OUT / "train")
    print("done", len(indices), round(time.time() - start, 1))
