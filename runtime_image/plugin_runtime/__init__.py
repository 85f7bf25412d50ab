"""In-container runtime for plugins: ``python3 -m plugin_runtime`` runs one invocation.

Plugin authors use ``from plugin_runtime import PluginCore`` (and ``ApiError`` to catch
failed ``self.api`` calls). Importing this package has no side effects.
"""

from plugin_runtime.api import ApiClient, ApiError
from plugin_runtime.core import PluginCore

__all__ = ["ApiClient", "ApiError", "PluginCore"]
