"""Versioned label releases for ML engineers (issue 39)."""

# The Celery job that builds a release (``releases.jobs``), sent by name.
BUILD_RELEASE = "releases.build"
