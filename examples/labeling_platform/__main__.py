"""``python -m examples.labeling_platform``: serve the platform (settings from PLATFORM_*)."""

import logging

import uvicorn

from examples.labeling_platform import PlatformSettings, create_app

# The required fields come from PLATFORM_* variables, which mypy cannot see.
settings = PlatformSettings()  # type: ignore[call-arg]
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
