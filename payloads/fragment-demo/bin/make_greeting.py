"""Write a greeting for every name in a file (run by fragment-demo's RUN)."""

import os
import pathlib
import sys

names = pathlib.Path(sys.argv[1]).read_text().split()
home = pathlib.Path(os.environ["FRAGMENT_DEMO_HOME"])
(home / "greeting.txt").write_text("".join(f"hello {n}\n" for n in names))
