"""A base class imported relatively (and aliased) by main.py."""


class ReviewBase:
    def on_send_back_to_queue(self, asset_id):
        self.logger.info("inherited on_send_back_to_queue for %s", asset_id)
