"""Runtime flavors as the engine has them: their images, packages and top-level modules.

deploy/build-flavor-images.sh labels each flavor image with its ``pip freeze`` and the
top-level modules it installed, so listing them inspects images and never starts one.
"""

from __future__ import annotations

from dataclasses import dataclass

from executor.engine import Engine
from executor.errors import BuildFailed
from executor.settings import ImageSettings
from executor.statuses import RuntimeFlavor

__all__ = ["MODULES_LABEL", "PACKAGES_LABEL", "Flavor", "describe_flavors", "flavor_modules"]

PACKAGES_LABEL = "io.plugin-executor.flavor.packages"  # "name==version name==version ..."
MODULES_LABEL = "io.plugin-executor.flavor.modules"  # "module module ..."


@dataclass(frozen=True)
class Flavor:
    """One runtime flavor: its image, whether it is built, and its package versions."""

    name: RuntimeFlavor
    image: str
    default: bool
    available: bool
    packages: dict[str, str]  # distribution name -> version


def describe_flavors(engine: Engine, images: ImageSettings) -> list[Flavor]:
    """Every flavor, in the order of ``RuntimeFlavor``."""
    return [_describe(engine, images, flavor) for flavor in RuntimeFlavor]


def flavor_modules(engine: Engine, images: ImageSettings, flavor: RuntimeFlavor) -> list[str]:
    """The top-level modules ``flavor``'s image installed; ``BuildFailed`` when the engine
    has no such image (rather than the engine's attempt to pull it from a registry)."""
    image = images.flavor_image(flavor)
    labels = engine.images.labels(image)
    if labels is None:
        raise BuildFailed(
            f"the image of runtime flavor '{flavor}', {image}, is not on the Docker Engine: "
            "the operator builds it with deploy/build-flavor-images.sh (deploy/setup.sh does)"
        )
    return labels.get(MODULES_LABEL, "").split()


def _describe(engine: Engine, images: ImageSettings, flavor: RuntimeFlavor) -> Flavor:
    image = images.flavor_image(flavor)
    labels = engine.images.labels(image)
    pins = (labels or {}).get(PACKAGES_LABEL, "").split()
    return Flavor(
        name=flavor,
        image=image,
        default=flavor == images.runtime_default_flavor,
        available=labels is not None,
        packages=dict(pin.partition("==")[::2] for pin in pins),
    )
