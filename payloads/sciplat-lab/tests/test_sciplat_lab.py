"""sciplat-lab's own checks, run after the image contract.

Fixtures (``host``, ``container``, ``ro_container``, ``image_info``,
``kernel_runner``, ``lab_token``) come from nublado-build's contract plugin.
"""

import json
import re
import urllib.request

from nubladobuild.contract.labclient import execute_in_lab
from nubladobuild.contract.plugin import ARBITRARY_UID, finish_lab, lab_get, start_lab

STACK = "/opt/lsst/software/stack"
PYTHON = f"{STACK}/conda/envs/lsst-scipipe/bin/python"
LEGACY = "/opt/lsst/software/jupyterlab"
SENTINEL = {"RUNNING_INSIDE_JUPYTERLAB": "TRUE"}
USER_SETUPS = 'export MY_USER_SETUP="from .user_setups"\nsetup utils\n'


def test_stack_layout(host):
    for path in (f"{STACK}/loadLSST.bash", f"{STACK}/eups/setup.bash", PYTHON,
                 f"{STACK}/stack/current/lsst_distrib/ups/lsst_distrib.table"):
        assert host.file(path).exists, path
    assert host.file(STACK).user == "root"
    assert host.run(f"test -w {STACK}/loadLSST.bash").rc != 0
    assert host.file(f"{STACK}/stack/current/VERSION").content_string.strip() \
        == "w_2025_30"


def test_kernel_sets_up_lsst_distrib(container, image_info, kernel_runner):
    result = kernel_runner(container, "lsst", (
        "import os, sys, lsst.daf.butler\n"
        "print(os.environ['SETUP_LSST_DISTRIB'].split()[0], "
        "lsst.daf.butler.__version__, lsst.daf.butler.UTILS_VERSION, "
        "os.environ['OMP_NUM_THREADS'], sys.executable)"))
    assert result["status"] == "ok", result
    assert result["stdout"].split() == ["lsst_distrib", "28.2025.3000",
                                        "28.2025.3000", "1", PYTHON]


def test_user_setups_honoured_by_the_kernel(ro_container, kernel_runner):
    """~/notebooks/.user_setups runs after `setup lsst_distrib` (arbitrary UID)."""
    home = "/home/user/setups-home"
    ro_container.exec("bash", "-c", f"mkdir -p {home}/notebooks && cat > "
                      f"{home}/notebooks/.user_setups", input_text=USER_SETUPS,
                      check=True)
    code = ("import os; print(os.getuid(), os.environ.get('MY_USER_SETUP'), "
            "os.environ['SETUP_UTILS'].split()[0])")
    result = kernel_runner(ro_container, "lsst", code, env={"HOME": home})
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == f"{ARBITRARY_UID} from .user_setups utils"
    # Without the file the kernel starts all the same.
    plain = kernel_runner(ro_container, "lsst", code,
                          env={"HOME": "/home/user/no-such-home"})
    assert plain["stdout"].split()[1] == "None"


def test_user_setups_through_the_legacy_lab(image_info, lab_token):
    """The old controller's start, a real home with .user_setups, a kernel
    started by the lab itself (POST /api/kernels + websocket)."""
    lab = start_lab(
        image_info, lab_token, "arbitrary-uid-read-only",
        env={"JUPYTERLAB_CONFIG_DIR": LEGACY,
             "JUPYTERLAB_START_COMMAND": f"{LEGACY}/runlab.sh",
             "RUNNING_INSIDE_JUPYTERLAB": "TRUE"},
        command=[f"{LEGACY}/runlab.sh"])
    try:
        lab.box.exec("bash", "-c", "mkdir -p ~/notebooks && cat > "
                     "~/notebooks/.user_setups", input_text=USER_SETUPS, check=True)
        result = execute_in_lab(lab.base, lab_token, "lsst", (
            "import os, lsst.daf.butler; print(os.environ['MY_USER_SETUP'], "
            "os.environ['SETUP_LSST_DISTRIB'].split()[0])"))
    finally:
        # Removes the container; fails when the server logged an error.
        finish_lab(lab)
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == "from .user_setups lsst_distrib"


def test_terminal_loads_the_stack(container):
    proc = container.exec("bash", "-lc", "command -v python; type -t setup; "
                          "setup lsst_distrib && butler && eups list",
                          env=SENTINEL, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{STACK}/conda/envs/lsst-scipipe/bin/python"
    assert lines[1] == "function"
    assert lines[2].startswith("butler (stand-in) ")
    assert any(ln.startswith("lsst_distrib") and ln.endswith("setup")
               for ln in lines)


def test_terminal_outside_lab_has_no_stack(container):
    proc = container.exec("bash", "-lc", "type -t setup || echo none", check=True)
    assert proc.stdout.strip() == "none"


def test_legacy_kernel_files(host):
    launcher = host.file(f"{LEGACY}/lsstlaunch.bash")
    text = launcher.content_string
    assert "source /opt/lsst/software/stack/loadLSST.bash" in text
    assert "setup lsst_distrib" in text and ".user_setups" in text
    assert text.strip().splitlines()[-1].startswith("exec ")
    spec = json.loads(host.file(f"{LEGACY}/lsst_kernel.json").content_string)
    assert spec["display_name"] == "LSST"
    assert spec["argv"][0] == launcher.linked_to


def test_lab_extension_and_settings_are_served(image_info, lab_token):
    """payload.yaml's lab section: the spellchecker (lab.extensions) is a
    federated extension of the running lab, its override is the setting's
    default, and the page config disables the extension manager besides
    what the base disables."""
    lab = start_lab(image_info, lab_token, "arbitrary-uid-read-only")
    try:
        settings = lab_get(lab.base, "/lab/api/settings/"
                           "@jupyterlab-contrib/spellchecker:plugin", lab_token)
        request = urllib.request.Request(
            f"{lab.base}/lab", headers={"Authorization": f"token {lab_token}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            page = resp.read().decode()
    finally:
        finish_lab(lab)
    assert settings["schema"]["properties"]["checkComments"]["default"] is False
    config = json.loads(re.search(r'<script id="jupyter-config-data" '
                                  r'type="application/json">(.*?)</script>',
                                  page, re.DOTALL).group(1))
    assert "@jupyterlab-contrib/spellchecker" in [
        ext["name"] for ext in config["federated_extensions"]]
    assert sorted(config["disabledExtensions"]) == [
        "@jupyterlab/apputils-extension:announcements",
        "@jupyterlab/extensionmanager-extension:plugin"]
