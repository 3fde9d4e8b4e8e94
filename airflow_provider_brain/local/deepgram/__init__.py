"""Deepgram's pre-recorded dialect on the local server's port: ``POST /v1/listen`` and the management API
of a user's listen requests, answered by the same recogniser, queue and store as the Brain API.

``routes()`` lists the routes; ``DeepgramDialect`` (``service.py``) is the state the app's lifespan opens.
"""

from __future__ import annotations

from starlette.routing import Route

from airflow_provider_brain.local.deepgram import listen, manage


def routes() -> list[Route]:
    """The dialect's routes, for ``local/app.py``."""
    return [
        Route("/v1/listen", listen.listen, methods=["POST"]),
        Route("/v1/projects", manage.list_projects, methods=["GET"]),
        Route("/v1/projects/{project_id}", manage.get_project, methods=["GET"]),
        Route("/v1/projects/{project_id}/requests", manage.list_requests, methods=["GET"]),
        Route("/v1/projects/{project_id}/requests/{request_id}", manage.get_request, methods=["GET"]),
        Route("/v1/projects/{project_id}/usage", manage.usage, methods=["GET"]),
        Route("/v1/projects/{project_id}/usage/breakdown", manage.usage_breakdown, methods=["GET"]),
    ]
