"""Lets ``python -m airflow_provider_brain.local serve ...`` work like the ``brain-local`` script."""

from __future__ import annotations

import sys

from airflow_provider_brain.local.cli import main

if __name__ == "__main__":
    sys.exit(main())
