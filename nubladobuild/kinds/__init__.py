"""The install kinds: one module each, behind :class:`Kind`, in one registry.

Adding a kind: write ``kinds/<name>.py`` defining ``KIND``, add its
template ``templates/steps/<name>.j2``, list it in :data:`KINDS`, and test it.
The loader, the schema and the planner iterate this registry.
"""

from __future__ import annotations

from nubladobuild.kinds import apt, conda, dockerfile, pip, script, transplant
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)

#: Every install kind, in the order messages list them.
KINDS: dict[str, Kind] = {k.name: k for k in (
    pip.KIND, conda.KIND, script.KIND, dockerfile.KIND, transplant.KIND, apt.KIND)}

__all__ = ["KINDS", "Environment", "Kind", "StepContext", "StepInput", "StepPlan"]
