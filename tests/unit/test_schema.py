"""payload.yaml validation: every problem at once, with YAML paths and lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubladobuild.errors import EXIT_INPUT, PayloadInvalid
from nubladobuild.loader import load_payload

GOOD = """\
name: demo
install:
  - pip: {requirements: requirements.txt}
kernel:
  name: demo
  display_name: Demo
"""


def write(tmp: Path, text: str, files: dict[str, str] | None = None) -> Path:
    (tmp / "payload.yaml").write_text(text)
    for name, content in (files or {"requirements.txt": "six\n"}).items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp


def problems(tmp: Path, text: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(write(tmp, text, files))
    assert info.value.exit_code == EXIT_INPUT
    return [p.render() for p in info.value.problems]


def test_good_payload_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_payload(write(tmp_path, GOOD))
    model = loaded.model
    assert model.steps()[0].kind == "pip"
    assert model.steps()[0].spec.prefix == "/opt/payload/venv"
    assert model.kernel_python == "/opt/payload/venv/bin/python"
    assert not model.default_kernel.needs_wrapper


def test_all_errors_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = """\
name: Bad Name
install:
  - pip: {requirements: nope.txt, prefix: /usr/local/share/jupyterlab/venv/x}
  - conda: {environment: env.yml}
    script: {path: x.sh, prefix: /opt/x}
  - snap: {}
kernel:
  name: "k;rm -rf /"
  display_name: ""
  colour: blue
"""
    found = problems(tmp_path, text)
    joined = "\n".join(found)
    assert len(found) >= 7, joined
    expected = [
        ":1: name:",
        ":3: install[0].pip.prefix:",
        ":3: install[0].pip.requirements: file 'nope.txt' does not exist",
        ":4: install[1]: ",
        "install[2].snap: unknown install kind 'snap'",
        ":8: kernel.name:",
        ":9: kernel.display_name:",
        ":10: kernel.colour: unknown field",
    ]
    for needle in expected:
        assert needle in joined, f"{needle!r} not in:\n{joined}"
    assert all(line.startswith(str(tmp_path / "payload.yaml")) for line in found)


@pytest.mark.parametrize(("text", "needle"), [
    ("name: x\ninstall: [\n", "invalid YAML"),
    ("", "file is empty"),
    ("- a\n- b\n", "top level must be a mapping"),
    (GOOD + "name: again\n", "duplicate key 'name'"),
    (GOOD.replace("requirements.txt}", "../outside.txt}"), "escapes the payload"),
    (GOOD.replace("requirements.txt}", "/etc/passwd}"), "relative to the payload"),
    (GOOD.replace("{requirements: requirements.txt}",
                  "{requirements: requirements.txt, prefix: /usr}"),
     "system directory"),
    (GOOD.replace("{requirements: requirements.txt}",
                  "{requirements: requirements.txt, prefix: '/opt/a b'}"),
     "contains characters"),
    (GOOD.replace("display_name: Demo", "display_name: Demo\n  env: {1BAD: x}"),
     "kernel.env.1BAD"),
    (GOOD.replace("display_name: Demo", 'display_name: Demo\n  setup: ["a\\nb"]'),
     "single line"),
    (GOOD + "tests: missing-tests\n", "directory 'missing-tests' does not exist"),
    (GOOD.replace("pip: {requirements: requirements.txt}", "pip: requirements.txt"),
     "install[0].pip"),
])
def test_single_problem_messages(tmp_path: Path, text: str, needle: str) -> None:
    found = "\n".join(problems(tmp_path, text))
    assert needle in found


def test_hashed_requirements_without_ipykernel_get_kernel_support(
        tmp_path: Path) -> None:
    # Installed as locked, then ipykernel from the tool's own lock
    # (tests/unit/test_pip_inputs.py checks the rendered step).
    locked = "six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    (tmp_path / "requirements.txt").write_text(locked)
    (tmp_path / "payload.yaml").write_text(GOOD)
    loaded = load_payload(tmp_path)
    assert loaded.inputs[0].extra.kernel_support is True


def test_nested_requirement_includes_refused(tmp_path: Path) -> None:
    found = "\n".join(problems(tmp_path, GOOD, {"requirements.txt": "-r other.txt\n"}))
    assert "-r/-c" in found


def test_symlink_escaping_payload_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("six\n")
    payload = tmp_path / "p"
    payload.mkdir()
    (payload / "requirements.txt").symlink_to(outside)
    (payload / "payload.yaml").write_text(GOOD)
    with pytest.raises(PayloadInvalid) as info:
        load_payload(payload)
    assert "resolves outside the payload directory" in info.value.message


def test_kernel_python_must_be_derivable(tmp_path: Path) -> None:
    text = GOOD.replace("pip: {requirements: requirements.txt}",
                        "dockerfile: {path: requirements.txt}")
    assert "kernel.python cannot be derived" in "\n".join(problems(tmp_path, text))


@pytest.mark.parametrize("prefix", ["/usr/bin", "/usr/lib", "/usr/local/bin", "/bin",
                                    "/etc", "/var", "/usr/bin/x", "/usr/lib/x",
                                    "/tmp/x", "/proc/x", "/run/x", "/etc/x",
                                    "/usr/local/lib/python3.13/x",
                                    "/usr/local/etc/jupyter/x", "/etc/jupyter/x"])
def test_prefix_in_system_or_protected_tree_refused(tmp_path: Path,
                                                    prefix: str) -> None:
    """Regression (issue 9): /usr/bin and /usr/lib had slipped into a comment."""
    (tmp_path / "r.txt").write_text("six\n")
    (tmp_path / "payload.yaml").write_text(
        f"name: p\ninstall:\n  - pip: {{requirements: r.txt, prefix: '{prefix}'}}\n"
        "kernel: {name: k, display_name: K}\n")
    with pytest.raises(PayloadInvalid) as info:
        load_payload(tmp_path)
    problem = info.value.problems[0]
    assert problem.location == "install[0].pip.prefix"
    assert "cannot be a payload prefix" in problem.message


@pytest.mark.parametrize("prefix", ["/opt/x", "/srv/env", "/usr/local/payload",
                                    "/var/lib/x", "/home/x/env"])
def test_dedicated_prefixes_accepted(tmp_path: Path, prefix: str) -> None:
    (tmp_path / "r.txt").write_text("six\n")
    (tmp_path / "payload.yaml").write_text(
        f"name: p\ninstall:\n  - pip: {{requirements: r.txt, prefix: '{prefix}'}}\n"
        "kernel: {name: k, display_name: K}\n")
    assert load_payload(tmp_path).model.kernel_python == f"{prefix}/bin/python"
