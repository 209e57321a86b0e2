"""Write the shell files the templates render for every example payload.

``scripts/lint`` runs shellcheck over them: kernel wrappers, terminal setup
and the run step scripts, as they reach the image.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.unit.helpers import files_of, plan_of

REPO = Path(__file__).resolve().parents[1]
SHELL_FILES = ("kernel/launch", "shell/setup.sh")


def main(out: Path) -> int:
    """Render every example payload's shell files under ``out``."""
    count = 0
    for payload in sorted((REPO / "payloads").glob("*/payload.yaml")):
        files = files_of(plan_of(payload.parent))
        # Every kernel's wrapper: the default's is kernel/launch, the
        # others' kernels/<name>/launch.
        wrappers = sorted(n for n in files if n.startswith("kernels/")
                          and n.endswith("/launch"))
        for name in (*SHELL_FILES, *wrappers):
            if name in files:
                target = out / payload.parent.name / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(files[name][0])
                count += 1
    print(f"render_shell: {count} files from the example payloads")
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
