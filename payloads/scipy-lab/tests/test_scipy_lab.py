"""The scipy-lab payload's own checks, run after the image contract.

Fixtures (``host``, ``container``, ``image_info``, ``kernel_runner``) come
from nublado-build's contract plugin.
"""

PYTHON = "/opt/payload/venv/bin/python"


def test_scientific_stack_imports(host):
    cmd = host.run(f"{PYTHON} -c 'import numpy, pandas, matplotlib'")
    assert cmd.rc == 0, cmd.stderr


def test_widget_packages_import(host):
    # The kernel halves of widgets and interactive figures; the browser
    # checks (payload/test_widgets.py) show them working with the lab's
    # frontends. ipywidgets 8 pairs with the lab's jupyterlab_widgets 3.
    cmd = host.run(f"{PYTHON} -c 'import ipywidgets, ipympl; "
                   "print(ipywidgets.__version__)'")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip().split(".")[0] == "8", cmd.stdout


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
    # pandas is the payload's alone: the standard lab venv has numpy and
    # matplotlib of its own (ipympl's and bokeh's frontends need them), but
    # never the payload's site-packages on its path.
    lab_python = "/usr/local/share/jupyterlab/venv/bin/python"
    assert host.run(f"{lab_python} -c 'import pandas'").rc != 0
    path = host.run(f"{lab_python} -c 'import sys; print(sys.path)'")
    assert path.rc == 0, path.stderr
    assert "/opt/payload" not in path.stdout, path.stdout
