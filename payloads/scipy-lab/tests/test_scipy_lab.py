"""The scipy-lab payload's own checks, run after the image contract.

Fixtures (``host``, ``container``, ``image_info``, ``kernel_runner``) come
from nublado-build's contract plugin.
"""

PYTHON = "/opt/payload/venv/bin/python"


def test_scientific_stack_imports(host):
    cmd = host.run(f"{PYTHON} -c 'import numpy, pandas, matplotlib'")
    assert cmd.rc == 0, cmd.stderr


def test_payload_venv_owned_by_root(host):
    venv = host.file("/opt/payload/venv")
    assert venv.user == "root"
    assert host.run("test -w /opt/payload/venv/lib").rc != 0


def test_kernel_computes_with_numpy(container, image_info, kernel_runner):
    code = ("import numpy as np, os; print(int(np.arange(10).sum()), "
            "os.environ['OMP_NUM_THREADS'], os.environ['NUBLADO_KERNEL_SETUP'])")
    result = kernel_runner(container, image_info.kernel, code)
    assert result["status"] == "ok", result
    assert result["stdout"].split() == ["45", "1", "done"]


def test_lab_python_cannot_import_payload(host):
    lab = "/usr/local/share/jupyterlab/venv"
    # pandas is the payload's only: the lab's Python must not find it.
    assert host.run(f"{lab}/bin/python -c 'import pandas'").rc != 0
    # The standard base profile has a numpy of its own (ipympl needs
    # matplotlib): the lab's Python imports that one, never the payload's.
    where = host.run(f"{lab}/bin/python -c 'import numpy; print(numpy.__file__)'")
    assert where.rc != 0 or where.stdout.startswith(f"{lab}/"), where.stdout
    path = host.check_output(f"{lab}/bin/python -c 'import sys; print(sys.path)'")
    assert "/opt/payload" not in path, path
