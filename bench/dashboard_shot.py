"""A browser's view of a run's dashboard: ``search dashboard`` on a free loopback port, headless
Chromium (Debian's ``chromium`` package) saving a screenshot of the study's page.

    python bench/dashboard_shot.py RUN_DIR [--out dashboard.png] [--wait-ms 8000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--out", default="dashboard.png")
    p.add_argument("--wait-ms", type=int, default=8000, help="how long the page may render")
    args = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("no chromium here: apt-get install chromium")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dash = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", args.run_dir, "--port", str(port)], cwd=ROOT
    )
    try:
        api = f"http://127.0.0.1:{port}/api/studies"
        for _ in range(100):
            try:
                with urllib.request.urlopen(api, timeout=2) as r:
                    study_id = json.loads(r.read())["study_summaries"][0]["study_id"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("the dashboard did not answer")
        url = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
        out = Path(args.out).resolve()
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1400,1800",
                f"--virtual-time-budget={args.wait_ms}",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            timeout=120,
            capture_output=True,
        )
        print(f"{url} -> {out} ({out.stat().st_size:,} bytes)")
    finally:
        dash.send_signal(signal.SIGINT)
        dash.wait(timeout=20)


if __name__ == "__main__":
    main()
