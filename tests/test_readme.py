"""The README's Python example runs as written."""
import re
from pathlib import Path


def test_the_python_api_example_runs(capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "bits per pixel" in capsys.readouterr().out
