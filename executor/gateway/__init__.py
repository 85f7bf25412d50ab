"""The gateway between plugin containers and the platform: server and policy."""
