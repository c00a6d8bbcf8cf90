"""One router per capability, composed here (bedevere's shape).

Adding a capability is adding a module with a ``router`` and naming it below.
Deployments may plug in routers of their own with ``NIMBYS_EXTRA_ROUTERS``
(``package.module:attribute``, comma-separated), as Probot loads apps.
"""

from __future__ import annotations

import importlib

from gidgethub import routing

from bot.commands.router import router as commands_router
from bot.lint_report.router import router as lint_report_router
from bot.pool.router import router as pool_router
from bot.runner_health.router import router as runner_health_router

CAPABILITIES = (runner_health_router, lint_report_router, commands_router, pool_router)


def load_router(spec: str) -> routing.Router:
    """Import ``package.module:attribute`` and check that it is a Router."""
    module_name, _, attr = spec.partition(":")
    found = getattr(importlib.import_module(module_name), attr or "router")
    if not isinstance(found, routing.Router):
        raise TypeError(f"{spec} is not a gidgethub routing.Router")
    return found


def build_router(extra: tuple[str, ...] = ()) -> routing.Router:
    return routing.Router(*CAPABILITIES, *(load_router(spec) for spec in extra))
