"""The JSON Schema of payload.yaml: shipped, current, and in step with validate."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from nubladobuild.errors import NubladoError
from nubladobuild.loader import format_loc, read_payload_yaml
from nubladobuild.payload_schema import SCHEMA_FILE, payload_json_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = sorted(p.parent for p in (ROOT / "payloads").glob("*/payload.yaml"))
CORPUS = ROOT / "tests" / "corpus"
MODELINE = "# yaml-language-server: $schema="

#: Corpus cases refused by ``validate`` whose payload.yaml the JSON Schema
#: refuses too (wrong shapes, unknown keys, missing keys, patterns, limits).
#: The other refusals need more than the schema can say (files, protected
#: trees, locks, YAML-level guards): an editor cannot see those. A case that
#: moves between the two makes this test fail, so the list stays exact.
SCHEMA_REFUSES = frozenset({
    "apt-bad-package-name", "apt-control-character", "apt-option-like",
    "apt-packages-and-file", "apt-url", "kernel-and-kernels", "pip-two-sources",
    "start-timeout-huge",
    "compat-65-links", "compat-bad-profile-name", "compat-path-newline",
    "conda-channel-newline", "conda-secrets-unknown-field", "cyrillic-name-key",
    "description-too-long", "description-wrong-type", "display-name-c1",
    "display-name-cr", "display-name-del", "display-name-esc", "display-name-nul",
    "install-65-steps", "install-empty-list", "install-not-a-list",
    "install-step-no-kind", "install-two-kinds-in-one-step",
    "kernel-display-name-newline", "kernel-env-300-keys", "kernel-env-bad-name",
    "kernel-env-value-c1-csi", "kernel-env-value-cr", "kernel-env-value-del",
    "kernel-env-value-esc", "kernel-env-value-int", "kernel-env-value-newline",
    "kernel-env-value-nul", "kernel-env-value-too-long", "kernel-missing-display-name",
    "kernel-name-dollar", "kernel-name-semicolon", "kernel-name-slash-traversal",
    "kernel-python-newline", "kernel-python-relative", "kernel-setup-300-lines",
    "kernel-setup-cr", "kernel-setup-esc", "kernel-setup-nel", "kernel-setup-newline",
    "kernel-setup-not-list", "kernel-setup-nul", "lab-unknown-key", "missing-install",
    "missing-kernel", "missing-name", "name-backticks", "name-command-substitution",
    "name-list", "name-newline", "name-semicolon", "name-too-long",
    "name-uppercase-underscore", "name-wrong-type", "pip-installer-unknown",
    "pip-python-metachar", "pip-secrets-unknown-field", "prefix-dollar",
    "prefix-relative", "prefix-shell-metachar", "requirements-absolute",
    "requirements-shell-metachar-name", "script-env-300-keys", "script-env-value-cr",
    "script-env-value-esc", "script-env-value-newline", "script-env-value-nul",
    "script-secrets-secret-id", "script-secrets-ssh", "script-secrets-string",
    "script-secrets-uppercase", "shell-setup-300-lines", "shell-setup-c1",
    "shell-setup-cr", "shell-setup-del", "shell-setup-newline", "shell-setup-nul",
    "tags-bad-policy", "tags-unknown-key", "tests-newline", "transplant-65-paths",
    "transplant-python-newline", "unknown-install-kind", "unknown-kernel-key",
    "unknown-pip-key-typo", "unknown-top-key", "yaml-bool-name",
    "yaml-norway-display-name", "yaml-null-kernel"
})


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_shipped_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "nubladobuild/data/payload.schema.json is stale: run "
        "`nublado-build schema -o nubladobuild/data/payload.schema.json`")


def test_schema_is_draft_2020_12_with_the_top_level_keys() -> None:
    schema = payload_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # kernel or kernels: exactly one, said by the top-level oneOf.
    assert schema["required"] == ["name", "install"]
    assert schema["oneOf"] == [{"required": ["kernel"]}, {"required": ["kernels"]}]
    assert sorted(schema["properties"]) == sorted(
        ["name", "description", "install", "kernel", "kernels", "shell", "compat",
         "tags", "tests", "lab", "start"])
    assert schema["additionalProperties"] is False
    step = schema["$defs"]["InstallStep"]
    assert sorted(step["properties"]) == sorted(
        ["pip", "conda", "script", "dockerfile", "transplant", "apt"])
    assert (step["minProperties"], step["maxProperties"]) == (1, 1)


def test_cli_prints_and_writes_the_shipped_schema(tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "nubladobuild", "schema"],
                             capture_output=True, text=True, check=True).stdout
    assert printed == SCHEMA_FILE.read_text(encoding="utf-8")
    out = tmp_path / "s.json"
    subprocess.run([sys.executable, "-m", "nubladobuild", "schema", "-o", str(out)],
                   capture_output=True, text=True, check=True)
    assert out.read_text(encoding="utf-8") == printed


def test_cli_refuses_a_directory_as_output(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "nubladobuild", "schema", "-o",
                          str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "is a directory" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.name for p in PAYLOADS])
def test_example_payload_validates_and_names_the_schema(payload: Path) -> None:
    text = (payload / "payload.yaml").read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith(MODELINE)
    assert (payload / first[len(MODELINE):]).resolve() == SCHEMA_FILE
    errors = list(_validator().iter_errors(yaml.safe_load(text)))
    assert errors == []


def test_examples_are_all_there() -> None:
    assert [p.name for p in PAYLOADS] == [
        "conda-demo", "fragment-demo", "r-lab", "sciplat-lab", "scipy-lab",
        "script-demo", "spherex-lab", "transplant-demo"]


def _corpus_outcomes() -> dict[str, str]:
    """Map each corpus case to accepted / refused by the JSON Schema, or unread.

    Cases whose payload.yaml the loader refuses at the YAML level (or that
    generate their files at test time) are ``unread``: there is no mapping
    for a schema to see.
    """
    validator = _validator()
    outcomes: dict[str, str] = {}
    for case in sorted(p for p in CORPUS.iterdir() if (p / "expect.yaml").is_file()):
        expect: dict[str, Any] = yaml.safe_load(
            (case / "expect.yaml").read_text(encoding="utf-8"))
        if "generate" in expect or not (case / "payload.yaml").is_file():
            outcomes[case.name] = "unread"
            continue
        try:
            data = read_payload_yaml(case).data
        except NubladoError:
            outcomes[case.name] = "unread"
            continue
        refused = next(validator.iter_errors(data), None) is not None
        outcomes[case.name] = "refused" if refused else "accepted"
    return outcomes


def test_corpus_against_the_schema() -> None:
    outcomes = _corpus_outcomes()
    accepted_ok = [c for c, o in outcomes.items() if c.startswith("ok-")]
    # Every payload validate accepts, the schema accepts (or cannot read).
    assert [c for c in accepted_ok if outcomes[c] == "refused"] == []
    refused = {c for c, o in outcomes.items() if o == "refused"}
    assert refused == SCHEMA_REFUSES
    assert not any(c.startswith("ok-") for c in refused)
    assert Counter(outcomes.values()) == {"accepted": 356, "refused": 97,
                                          "unread": 34}


def _same_place(path: str, field: str) -> bool:
    """Whether a schema error at ``path`` is about the expected ``field``."""
    if not path:  # the top level: an unknown or missing top-level key
        return "." not in field and "[" not in field
    return any(a == b or a.startswith((b + ".", b + "["))
               for a, b in ((path, field), (field, path)))


@pytest.mark.parametrize("case", sorted(SCHEMA_REFUSES))
def test_schema_refuses_where_validate_does(case: str) -> None:
    """The schema's error is at the field validate names (not by accident)."""
    directory = CORPUS / case
    expect = yaml.safe_load((directory / "expect.yaml").read_text(encoding="utf-8"))
    errors = list(_validator().iter_errors(read_payload_yaml(directory).data))
    paths = {format_loc(tuple(e.absolute_path)) for e in errors}
    assert any(_same_place(p, expect["field"]) for p in paths), (paths, expect)
