"""All tunables of the executor, read from ``EXECUTOR_*`` environment variables, in groups.

``Settings`` (executor.settings.root) holds the server's own and one attribute per group:
``api``, ``build``, ``images``, ``uploads``, ``sandbox``, ``runs``, ``warm_pool``, ``nodes``,
``gateway``, ``platform``, ``webhooks``, ``retention``, ``tenancy``.
"""

from executor.settings.base import MIB, Group, variable
from executor.settings.checks import PROJECT_PLACEHOLDER
from executor.settings.images import BuildSettings, ImageSettings, UploadSettings
from executor.settings.platform import GatewaySettings, PlatformSettings, PlatformTarget
from executor.settings.root import GROUPS, Settings, variable_at, variables
from executor.settings.runs import NodeSettings, RunSettings, WarmPoolSettings, WebhookSettings
from executor.settings.sandbox import SandboxProfile
from executor.settings.service import ApiSettings, RetentionSettings, TenancySettings

__all__ = [
    "GROUPS",
    "MIB",
    "PROJECT_PLACEHOLDER",
    "ApiSettings",
    "BuildSettings",
    "GatewaySettings",
    "Group",
    "ImageSettings",
    "NodeSettings",
    "PlatformSettings",
    "PlatformTarget",
    "RetentionSettings",
    "RunSettings",
    "SandboxProfile",
    "Settings",
    "TenancySettings",
    "UploadSettings",
    "WarmPoolSettings",
    "WebhookSettings",
    "variable",
    "variable_at",
    "variables",
]
