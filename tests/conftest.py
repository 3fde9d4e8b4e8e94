"""Shared pytest set-up: real servers (local Brain, moto S3, PostgreSQL) come from the fixture plugins below."""

pytest_plugins = [
    "tests.fixtures.speech",
    "tests.fixtures.brain",
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.faults",
    "tests.fixtures.connections",
    "tests.fixtures.airflow",
]
