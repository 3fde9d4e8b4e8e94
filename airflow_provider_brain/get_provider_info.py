"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

In Airflow 3 the connection form comes from here (``ui-field-behaviour`` and ``conn-fields``),
so the UI can draw it without importing the hook.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_brain import __version__, config


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: its hooks, operators, sensors, triggers, transfers and connection type."""
    return {
        "package-name": "airflow-provider-brain",
        "name": "Brain",
        "description": "Transcribe audio with the Brain speech-transcription API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Brain",
                "external-doc-url": "https://brain.deepgram.com",
                "how-to-guide": [
                    f"/docs/howto/{page}.rst"
                    for page in (
                        "transcribe",
                        "batch",
                        "start_from_trigger",
                        "sensor",
                        "triggers",
                        "to_s3",
                        "to_sql",
                        "search",
                        "assets_lineage",
                        "s3_events",
                        "operations",
                        "local_server",
                        "production",
                    )
                ],
                "tags": ["service"],
            },
            {
                "integration-name": "Deepgram",
                "external-doc-url": "https://developers.deepgram.com/reference/speech-to-text-api/listen",
                "how-to-guide": ["/docs/howto/deepgram.rst"],
                "tags": ["service"],
            },
        ],
        "config": {
            config.SECTION: {
                "description": "Defaults for the Brain provider's operators and triggers.\n",
                "options": config.OPTIONS,
            }
        },
        "hooks": [
            {"integration-name": "Brain", "python-modules": ["airflow_provider_brain.hooks.brain"]},
            {"integration-name": "Deepgram", "python-modules": ["airflow_provider_brain.hooks.deepgram"]},
        ],
        "operators": [
            {
                "integration-name": "Brain",
                "python-modules": [
                    "airflow_provider_brain.operators.transcribe",
                    "airflow_provider_brain.operators.transcribe_batch",
                    "airflow_provider_brain.operators.search",
                ],
            },
            {
                "integration-name": "Deepgram",
                "python-modules": [
                    "airflow_provider_brain.operators.deepgram",
                    "airflow_provider_brain.operators.deepgram_batch",
                ],
            },
        ],
        "sensors": [
            {"integration-name": "Brain", "python-modules": ["airflow_provider_brain.sensors.asset"]},
        ],
        "triggers": [
            {
                "integration-name": "Brain",
                "python-modules": [
                    "airflow_provider_brain.triggers.asset",
                    "airflow_provider_brain.triggers.batch",
                    "airflow_provider_brain.triggers.transcribe",
                ],
            },
            {
                "integration-name": "Deepgram",
                "python-modules": [
                    "airflow_provider_brain.triggers.deepgram",
                    "airflow_provider_brain.triggers.deepgram_batch",
                ],
            },
        ],
        "transfers": [
            {
                "source-integration-name": "Brain",
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_provider_brain.transfers.brain_to_s3",
            },
            {
                "source-integration-name": "Brain",
                "target-integration-name": "Common SQL",
                "python-module": "airflow_provider_brain.transfers.brain_to_sql",
            },
        ],
        "extra-links": ["airflow_provider_brain.links.BrainAssetLink"],
        "connection-types": [
            {
                "connection-type": "brain",
                "hook-class-name": "airflow_provider_brain.hooks.brain.BrainHook",
                "hook-name": "Brain",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "API ID / username",
                        "password": "API token / password",
                    },
                    "placeholders": {
                        "host": "https://brain.deepgram.com",
                        "login": "API ID or username",
                        "password": "API token or password",
                        "timeout": "300",
                        "max_retries": "5",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "How long one request may wait for an answer; synchronous "
                        "transcriptions answer only when done.",
                        "schema": {"type": ["number", "null"], "minimum": 1},
                    },
                    "verify": {
                        "label": "Verify TLS certificates",
                        "description": "Turn off only for a local server with a self-signed certificate.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "proxies": {
                        "label": "Proxies",
                        "description": 'JSON object of proxies by scheme, e.g. {"https": "http://proxy:3128"}.',
                        "schema": {"type": ["object", "null"]},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of a request that hit a connection error, 429 or 5xx.",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
                    },
                },
            },
            _DEEPGRAM_CONNECTION,
        ],
    }


#: The ``deepgram`` connection: the API key in the password, the API's URL in the host (Deepgram's by default).
_DEEPGRAM_CONNECTION: dict[str, Any] = {
    "connection-type": "deepgram",
    "hook-class-name": "airflow_provider_brain.hooks.deepgram.DeepgramHook",
    "hook-name": "Deepgram",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {"host": "API URL", "password": "API key"},
        "placeholders": {
            "host": "https://api.deepgram.com",
            "password": "Deepgram API key",
            "project_id": "first project of the key",
            "options": '{"model": "nova-3", "smart_format": true}',
        },
    },
    "conn-fields": {
        "project_id": {
            "label": "Project ID",
            "description": "The project whose request history is searched after a lost answer; "
            "by default the first project the key sees.",
            "schema": {"type": ["string", "null"]},
        },
        "options": {
            "label": "Default listen options",
            "description": 'JSON object of /v1/listen options every request starts from, e.g. {"model": "nova-3"}.',
            "schema": {"type": ["object", "null"]},
        },
        "timeout": {
            "label": "Timeout (seconds)",
            "description": "How long one request may wait for Deepgram's answer (it answers when the transcript "
            "is done).",
            "schema": {"type": ["number", "null"], "minimum": 1},
        },
        "max_retries": {
            "label": "Max retries",
            "description": "Resends of a request Deepgram refused (429) or never received.",
            "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
        },
    },
}
