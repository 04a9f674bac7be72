"""The runtime never imports torch, transformers or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers")

SCRIPT = f"""
import json, sys
HEAVY = {HEAVY!r}
import lightembed
model = lightembed.load(sys.argv[1])
vectors = model.embed(["the cat sat on the mat", "play the piano"])
model.similarity("cat", "dog")
model.deduplicate(["cat", "cat", "dog"], threshold=0.9)
model.cluster(["cat", "dog", "piano"], 2, seed=0)
model.rerank("cat", ["the cat", "a dog"])
print(json.dumps({{
    "shape": list(vectors.shape),
    "heavy": sorted(name for name in sys.modules if name.split(".")[0] in HEAVY),
}}))
"""


def test_import_and_embed_do_not_import_torch(tiny_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2, 16]
    assert report["heavy"] == []
