"""conda-demo's own checks, run after the image contract."""

PYTHON = "/opt/conda/envs/demo/bin/python"


def test_env_has_its_own_python(host):
    out = host.check_output(f"{PYTHON} -c 'import sys; print(sys.version_info[:2])'")
    assert out == "(3, 11)"


def test_pip_entry_installed_into_env(host):
    assert host.run(f"{PYTHON} -c 'import idna, six'").rc == 0


def test_no_installer_left_in_image(host):
    assert not host.file("/tmp/rattler").exists
    assert host.run(f"{PYTHON} -c 'import rattler'").rc != 0


def test_script_step_ran_after_conda(host):
    assert host.check_output("/opt/conda-demo-tools/bin/demo-greeting") == \
        "hello from conda-demo"


def test_kernel_is_activated(container, image_info, kernel_runner):
    result = kernel_runner(container, image_info.kernel,
                           "import os, sys; print(sys.version_info[1], "
                           "os.environ['CONDA_PREFIX'], "
                           "os.environ['PATH'].split(':')[0])")
    assert result["status"] == "ok", result
    assert result["stdout"].split() == ["11", "/opt/conda/envs/demo",
                                        "/opt/conda/envs/demo/bin"]
