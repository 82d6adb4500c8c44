"""``benchmarks/gpu_checks.sh`` is run on a lent GPU, where a minute lost to a misspelt flag is a
minute of a short budget: every benchmark it calls exists and accepts every option it is given
(checked here, on the CPU, against each script's ``--help``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"


def _calls() -> dict[str, set[str]]:
    """``{benchmark path: options used}`` over every ``run`` line of the script (continuations joined)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    calls: dict[str, set[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("run ") or "-m pytest" in line:
            continue
        match = re.search(r'"\$py"\s+(benchmarks/\S+\.py)(.*)$', line)
        assert match, f"cannot read the benchmark of: {line}"
        calls.setdefault(match.group(1), set()).update(re.findall(r"(--[a-z][a-z0-9-]*)", match.group(2)))
    return calls


def test_every_benchmark_in_the_gpu_script_exists_and_takes_its_options():
    calls = _calls()
    assert len(calls) >= 5                                  # the script does call the benchmarks
    for path, options in sorted(calls.items()):
        assert (ROOT / path).is_file(), path
        res = subprocess.run([sys.executable, str(ROOT / path), "--help"], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert res.returncode == 0, (path, res.stderr[-2000:])
        missing = sorted(o for o in options if o not in res.stdout)
        assert not missing, f"{path} does not take {missing}"
