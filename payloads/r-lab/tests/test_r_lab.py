"""The r-lab payload's own checks, run after the image contract.

Fixtures (``host``, ``container``, ``image_info``, ``kernel_runner``) come
from nublado-build's contract plugin. The contract already runs code in
both kernels; these check what this payload promises on top.
"""

PYTHON = "/opt/r-lab/venv/bin/python"


def test_kernels_in_order(image_info):
    # The first kernel is the default: the one python3 names.
    assert image_info.kernels == ("py", "ir")
    assert image_info.python == PYTHON


def test_r_kernel_runs_debian_r_with_its_env(container, kernel_runner):
    code = 'cat(R.home(), Sys.getenv("OMP_NUM_THREADS"), 6 * 7)'
    result = kernel_runner(container, "ir", code)
    assert result["status"] == "ok", result
    assert result["stdout"].split() == ["/usr/lib/R", "1", "42"]


def test_python_kernel_computes_with_numpy(container, image_info, kernel_runner):
    code = "import numpy as np, sys; print(int(np.arange(10).sum()), sys.executable)"
    result = kernel_runner(container, image_info.kernel, code)
    assert result["status"] == "ok", result
    assert result["stdout"].split() == ["45", PYTHON]


def test_debian_irkernel_spec_not_installed(host):
    # Debian's r-cran-irkernel ships /usr/share/jupyter/kernels/ir; the apt
    # kind leaves the lab's Jupyter trees alone.
    assert not host.file("/usr/share/jupyter").exists
