"""The muelle release, reported by every component."""

VERSION = "0.1.0"
API_VERSION = "v1"
