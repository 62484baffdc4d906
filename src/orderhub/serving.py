"""The environment of the server processes `orderhub serve --workers N` launches."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from orderhub.settings import Settings

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_worker_processes_environment(settings: Settings) -> None:
    """Set up this process's environment for the uvicorn worker processes it is about to
    start: call it before they spawn, as they inherit it then.

    Every worker process counts its Prometheus figures into one directory, so that a
    scrape answered by any of them sums them all (prometheus-client's multiprocess mode).
    prometheus-client takes that directory from the process environment only: it picks
    multiprocess mode when it is imported in a worker, before any orderhub code runs
    there, and names each metric's file from the variable. So it cannot be an argument or
    a setting handed over later; it must be in the environment the workers inherit from
    this process. Unless the operator named one (PROMETHEUS_MULTIPROC_DIR, then already
    in that environment), a fresh directory for this run, removed at exit. The workers'
    settings read the same variable, so their `Metrics` know the directory too."""
    if settings.prometheus_multiproc_dir is not None:
        return
    directory = tempfile.mkdtemp(prefix="orderhub-metrics-")
    os.environ[MULTIPROC_DIR] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
