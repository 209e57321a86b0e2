"""The Jinja environment shared by every generator.

Autoescaping is off (we render shell and Dockerfiles, not HTML); values
that reach a shell go through the ``q`` filter (:func:`shlex.quote`) and
values in Dockerfile instructions through ``dockerstr``.
"""

from __future__ import annotations

import json
import shlex
from functools import cache
from typing import Any

import jinja2

from nubladobuild.resources import templates_dir


def dockerstr(value: str) -> str:
    """Quote a value for a Dockerfile ``LABEL``/``ENV``: JSON string, ``$`` escaped."""
    return json.dumps(value, ensure_ascii=False).replace("$", "\\$")


def label(item: tuple[str, str]) -> str:
    """Format a ``(key, value)`` pair for a Dockerfile ``LABEL`` instruction."""
    return f"{item[0]}={dockerstr(item[1])}"


@cache
def environment() -> jinja2.Environment:
    """Return the shared Jinja environment (strict undefined, trimmed blocks)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - shell and Dockerfiles, not HTML
    )
    env.filters["q"] = shlex.quote
    env.filters["dockerstr"] = dockerstr
    env.filters["label"] = label
    return env


def render_template(name: str, **data: Any) -> str:
    """Render one template with the given data."""
    return environment().get_template(name).render(**data)
