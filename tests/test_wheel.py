"""The built wheel installs into a fresh environment and loads its bundled default model offline.

Slow-ish (builds a wheel and a venv, about ten seconds) but part of the default run;
deselect with `-m "not slow"`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED_CONFIG = REPO / "weights" / "default" / "config.json"

pytestmark = pytest.mark.slow


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_wheel_installs_and_loads_the_bundled_model_offline(tmp_path: Path) -> None:
    if not BUNDLED_CONFIG.is_file():
        pytest.skip(f"the bundled default model is not built yet ({BUNDLED_CONFIG} does not exist)")
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the `test` extra)")

    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)])
    wheels = sorted(dist.glob("lightembed-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert "lightembed/__init__.py" in names
    assert "lightembed/weights/default/config.json" in names
    assert "lightembed/weights/default/model.safetensors" in names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    fresh_site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (fresh_site / "_lightembed_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheels[0])])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    script = (
        "import lightembed; m = lightembed.load(); "
        "print(lightembed.__file__); print(m.path); print(m.embed('hello').shape)"
    )
    out = run([str(python), "-c", script], cwd=tmp_path, env=env).stdout.strip().splitlines()
    module_file, model_path, shape = Path(out[-3]), Path(out[-2]), out[-1]
    assert module_file.resolve().is_relative_to(venv.resolve()), module_file
    assert model_path.resolve().is_relative_to(venv.resolve()), model_path
    assert model_path.parts[-3:] == ("lightembed", "weights", "default")
    assert shape.startswith("(") and shape.endswith(",)")
    assert int(shape.strip("(,)")) > 0
