"""transplant-demo's own checks, run after the image contract."""


def test_transplanted_tool_runs(host):
    assert host.run("/opt/demo-tool/bin/ls /opt/demo-tool/lib").rc == 0
    assert host.file("/opt/demo-tool/lib").is_directory


def test_transplanted_venv_is_the_kernel(container, image_info, kernel_runner):
    result = kernel_runner(container, image_info.kernel,
                           "import sys, ipykernel; print(sys.prefix)")
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == "/opt/demo-venv"
