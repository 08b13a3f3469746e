"""Uploads, verifies and announces model versions (``edml publish``, ``edml models``)."""
