"""A mixin whose handler is defined in its own base class."""


class _Logged:
    def on_submit(self, label, asset_id):
        self.logger.info("inherited on_submit for %s from %s", asset_id, __name__)


class SubmitMixin(_Logged):
    pass
