"""``infer.py --serve``: a local web app (live camera and microphone, file uploads, timelines) and
an HTTP JSON API over one loaded model. See docs/serve.md."""

from bridge.serve.app import ServeLimits, create_app, serve

__all__ = ["ServeLimits", "create_app", "serve"]
