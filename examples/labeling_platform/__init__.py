"""A small reference labeling platform (Kili's shape) to run the executor's examples against.

Not part of the ``executor`` package: it plays the platform's part in the demo, the
end-to-end tests and the compose file. ``create_app(PlatformSettings(...))`` builds the app;
``python -m examples.labeling_platform`` serves it.
"""

from examples.labeling_platform.app import create_app
from examples.labeling_platform.settings import PlatformSettings

__all__ = ["PlatformSettings", "create_app"]
