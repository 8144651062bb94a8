"""No credential-like string is tracked in git, except the local emulators' published defaults.

`.secrets.baseline` (detect-secrets) lists what is known and allowed: Azurite's documented
development key and moto's "testing" keys in .env.example and docker-compose.yaml, compose's local
Postgres password (as in the official Airflow compose file), documentation placeholders. Anything
else fails. After reviewing a new finding: `detect-secrets scan $(git ls-files) > .secrets.baseline`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from stack.config import ROOT


def scan(files: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    baseline = tmp_path / "baseline.json"  # the hook rewrites line numbers in its baseline: use a copy
    shutil.copy(ROOT / ".secrets.baseline", baseline)
    return subprocess.run(
        [str(Path(sys.executable).parent / "detect-secrets-hook"), "--baseline", str(baseline), *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_tracked_files_hold_no_unknown_secret(tmp_path):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    files = [f for f in files if f != ".secrets.baseline"]  # the baseline holds the allowed secrets' hashes
    assert len(files) > 50
    out = scan(files, tmp_path)
    # 3: only the copy's line numbers were refreshed (lines moved); 1 with this message: a new secret.
    assert out.returncode in (0, 3) and "Potential secrets" not in out.stdout, out.stdout + out.stderr


def test_a_real_looking_key_is_caught(tmp_path):
    leaked = tmp_path / "settings.py"
    leaked.write_text('AWS_ACCESS_KEY_ID = "AKIA' + "Q3EGRJ5XN2TWL7PV" + '"\n')  # built here: never in git
    out = scan([str(leaked)], tmp_path)
    assert out.returncode != 0 and "AWS Access Key" in out.stdout
