"""The API's route handlers, one module per part of ``BRAIN_API.md``; ``local/app.py`` assembles them."""
