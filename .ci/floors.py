"""Print the lowest versions pyproject.toml declares for the packages the floor job tests, as
pip pins (``torch==2.4.1 ...``): the floors and the job cannot drift apart.

A floor given as ``>=X`` pins ``==X``; where X has no build for this Python, raise the floor in
pyproject rather than pin another here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

FLOORED = ("torch", "numpy", "ray", "optuna", "pyarrow", "pydantic")


def main() -> int:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = []
    for req in project["project"]["dependencies"]:
        m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*([^;]*)", req)
        assert m, req
        name, extras, spec = m.group(1), m.group(2) or "", m.group(3)
        if name.lower() not in FLOORED:
            continue
        low = re.search(r">=\s*([0-9][^,\s]*)", spec)
        if low is None:
            print(f"{name} declares no floor (>=) in pyproject.toml", file=sys.stderr)
            return 2
        pins.append(f"{name}{extras}=={low.group(1)}")
    missing = set(FLOORED) - {p.split("[")[0].split("=")[0].lower() for p in pins}
    if missing:
        print(f"not in pyproject's dependencies: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    print(" ".join(pins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
