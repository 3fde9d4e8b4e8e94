"""A Brain-compatible local server that really transcribes speech, offline.

It is a separate program (``brain-local serve ...``), installed with the ``[local]`` extra; the
provider's runtime code never imports it. It serves the API described in ``BRAIN_API.md``: uploads
and URL submissions to ``/speech:recognize``, assets with transcripts, word timings and confidences,
recognised by pocketsphinx in a pool of worker processes, stored in SQLite and files in a data dir.
"""

from __future__ import annotations
