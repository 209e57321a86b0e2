"""script-demo's own checks, run after the image contract."""


def test_env_values_reach_the_script_verbatim(host):
    message = host.file("/opt/script-demo/share/message.txt").content_string
    assert message == "it's a 'quoted' $value; not expanded\n"


def test_payload_files_available_to_the_script(host):
    motd = host.file("/opt/script-demo/share/motd.txt").content_string
    assert "script-demo" in motd


def test_kernel_imports_script_installed_package(container, image_info,
                                                 kernel_runner):
    result = kernel_runner(container, image_info.kernel, "import six; print('ok')")
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == "ok"
