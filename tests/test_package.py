"""The distribution as pip builds it: one top-level package, within its size budget."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEEL_BUDGET = 25 * 10**6  # bytes: well under a package index's usual 100 MB per file


def test_the_wheel_holds_one_top_level_package_and_fits_its_budget(tmp_path):
    """Installing bbzip must create no top-level `models`, `cli` or `bbans` module (0.1 did: any
    other distribution, or a user's own models/ package, collided with them)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("bbzip-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"bbzip"}
    for expected in ("bbzip/__main__.py", "bbzip/cli/main.py", "bbzip/models/api.py", "bbzip/bbans/message.py",
                     "bbzip/models/weights/manifest.json"):
        assert expected in names
    assert any(name.startswith("bbzip/models/weights/") and name.endswith(".safetensors") for name in names)
    assert wheel.stat().st_size <= WHEEL_BUDGET, f"wheel of {wheel.stat().st_size / 1e6:.1f} MB"
