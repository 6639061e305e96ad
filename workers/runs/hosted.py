"""Registers the hosted tools (file_search, code_interpreter) that this deployment has."""

import importlib
import logging

logger = logging.getLogger(__name__)

for module in ("workers.retrieval.tool", "workers.sandbox.tool"):
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        logger.info("hosted tool module %s not present", module)
