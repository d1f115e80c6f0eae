"""Full-size checks, run with `pytest -m slow` (minutes): every MNIST test image through the
shipped models and back, in separate processes on different numbers of cores (-T 2, then -T 1)."""
import subprocess
import sys

import numpy as np
import pytest

from bbzip.models.data import load_named

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("data", ["binary-mnist", "mnist"])
@pytest.mark.parametrize("k_steps", [0, 10])
def test_the_whole_test_set_round_trips_across_processes(tmp_path, data, k_steps):
    images = load_named(data, "test")
    np.save(tmp_path / "test.npy", images)
    archive = tmp_path / "test.bb"
    subprocess.run([sys.executable, "-m", "bbzip", "-q", "compress", str(tmp_path / "test.npy"), "-o", str(archive),
                    "--k-steps", str(k_steps), "-T", "2"], check=True)
    subprocess.run([sys.executable, "-m", "bbzip", "-q", "decompress", str(archive), "-o", str(tmp_path / "out"), "-T", "1"],
                   check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "test.npy"), images)
    bpd = 8 * archive.stat().st_size / images.size
    assert bpd < (0.16 if data == "binary-mnist" else 1.56)  # the shipped models' measured rates, with a margin
