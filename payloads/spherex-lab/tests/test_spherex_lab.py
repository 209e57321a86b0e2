"""spherex-lab's own checks, run after the image contract.

Fixtures (``host``, ``container``, ``ro_container``, ``image_info``,
``kernel_runner``) come from nublado-build's contract plugin.
"""

PREFIX = "/opt/spherex"
PYTHON = f"{PREFIX}/bin/python"
SENTINEL = {"RUNNING_INSIDE_JUPYTERLAB": "TRUE"}


def test_conda_env_has_its_own_python(host):
    out = host.check_output(f"{PYTHON} -c 'import sys; print(sys.version_info[:2])'")
    assert out == "(3, 11)"
    assert host.file(f"{PREFIX}/conda-meta").is_directory
    assert host.run(f"{PYTHON} -c 'import packaging, six, yaml, ipykernel'").rc == 0


def test_env_owned_by_root_and_read_only(host):
    assert host.file(PREFIX).user == "root"
    assert host.run(f"test -w {PREFIX}/lib").rc != 0


def test_extras_script_ran_after_conda(host):
    out = host.check_output("/opt/spherex-extras/bin/spherex-info")
    assert out.startswith("spherex 2025.07 python 3.11 ")


def test_spherex_kernel(ro_container, image_info, kernel_runner):
    assert image_info.kernel == "spherex"
    result = kernel_runner(ro_container, "spherex",
                           "import os, sys, yaml; print(os.getuid(), "
                           "sys.version_info[1], os.environ['SPHEREX_HOME'], "
                           "os.environ['CONDA_PREFIX'])")
    assert result["status"] == "ok", result
    uid, minor, home, prefix = result["stdout"].split()
    assert (minor, home, prefix) == ("11", PREFIX, PREFIX)
    assert uid != "0"


def test_terminal_uses_the_conda_env(container):
    proc = container.exec("bash", "-lc", "command -v python3; echo $CONDA_PREFIX",
                          env=SENTINEL, check=True)
    assert proc.stdout.split() == [f"{PREFIX}/bin/python3", PREFIX]


def test_controller_start_link(host):
    link = host.file("/opt/lsst/software/jupyterlab/runlab.sh")
    assert link.linked_to == "/usr/local/share/jupyterlab/runlab"
    assert not host.file("/opt/lsst/software/jupyterlab/lsst_kernel.json").exists
