"""fragment-demo's own checks, run after the image contract."""

import json
import subprocess


def _config(image):
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]["Config"]


def test_fragment_run_used_copied_files(host):
    greeting = host.file("/opt/fragment-demo/greeting.txt").content_string
    assert greeting == "hello Vera\nhello Rubin\n"


def test_fragment_env_label_and_workdir_reset(image_info):
    config = _config(image_info.image)
    assert "FRAGMENT_DEMO_HOME=/opt/fragment-demo" in config["Env"]
    assert image_info.labels["org.example.fragment-demo.version"] == "1.0"
    assert config["WorkingDir"] == "/tmp"
    assert config["User"] == image_info.user


def test_kernel_sees_fragment_env(container, image_info, kernel_runner):
    result = kernel_runner(container, image_info.kernel,
                           "import os, six; print(os.environ['FRAGMENT_DEMO_VERSION'])")
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == "1.0"
