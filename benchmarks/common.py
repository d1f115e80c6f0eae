"""Shared by the benchmark scripts: where results go and what each results file records."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# BBZIP_RESULTS_DIR redirects the output (the smoke tests write to a temporary folder).
RESULTS = Path(os.environ.get("BBZIP_RESULTS_DIR") or Path(__file__).resolve().parent / "results")


def compile_bytecode() -> None:
    """Compile bbzip's modules to bytecode before a timed run, as installing a package does:
    where PYTHONDONTWRITEBYTECODE is set (as on the machines these figures come from), each
    process, and each of its worker processes, would otherwise compile every module again at
    start-up (about 0.1 s a process here), which no installed bbzip does. Run once a process."""
    global _compiled
    if not _compiled:
        import compileall

        import bbzip
        import bbzip.bbans
        import bbzip.cli
        import bbzip.models

        for package in (bbzip, bbzip.bbans, bbzip.models, bbzip.cli):
            compileall.compile_dir(Path(package.__file__).parent, quiet=1)
        _compiled = True


_compiled = False


def timed_bbzip(*args, timeout: float = 3600) -> float:
    """Run one bbzip process (quiet) on these arguments; its wall time in seconds."""
    compile_bytecode()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bbzip", "-q", *map(str, args)], check=True, timeout=timeout)
    return time.perf_counter() - start


def environment() -> dict:
    import numpy
    import torch

    def version(package):
        try:
            from importlib.metadata import version as v

            return v(package)
        except Exception:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "constriction": version("constriction"),
        "pillow": version("pillow"),
        "bbzip_commit": commit,
    }


def markdown_table(columns: list[str], rows: list[list]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, title: str, sections: list[tuple[str, str]], data: dict) -> Path:
    """Write RESULTS/name.md (title, environment, sections of markdown) and RESULTS/name.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = environment()
    lines = [f"# {title}", "", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v), ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body, ""]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines))
    (RESULTS / f"{name}.json").write_text(json.dumps({"environment": env, **data}, indent=2) + "\n")
    return path
