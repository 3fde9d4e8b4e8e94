"""The provider's options in Airflow's configuration: section ``[brain]`` (declared in ``get_provider_info``).

Set them in ``airflow.cfg`` or as ``AIRFLOW__BRAIN__<OPTION>`` environment variables; each is read when a
task or trigger is created, on the machine that creates it.
"""

from __future__ import annotations

SECTION = "brain"
#: What ``default_poll_interval`` is when nothing sets it.
POLL_INTERVAL_FALLBACK = 10.0

OPTIONS = {
    "default_poll_interval": {
        "description": (
            "Seconds between two status checks of a Brain asset, for the transcribe operators and the "
            "trigger that starts a task in the triggerer, when the task does not set poll_interval. "
            "Every wait on one connection in a triggerer shares one poller, so shorter intervals cost "
            "one listing request per interval, not one per asset.\n"
        ),
        "version_added": None,
        "type": "float",
        "example": "30",
        "default": str(POLL_INTERVAL_FALLBACK),
    },
}


def default_poll_interval() -> float:
    """``[brain] default_poll_interval``, or 10 s."""
    from airflow.providers.common.compat.sdk import conf

    return float(conf.getfloat(SECTION, "default_poll_interval", fallback=POLL_INTERVAL_FALLBACK))
