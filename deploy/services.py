"""The services Airflow runs on: PostgreSQL (metadata DB and ``warehouse``), Redis (the Celery broker), moto
(S3 and SQS) and the local Brain server. Their command lines, readiness checks and one-off setup."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.processes import StackError, http_answers, tcp_answers

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("postgres", "redis", "moto", "brain")

BRAIN_USER, BRAIN_PASSWORD = "demo", "demo-stack-password"
AWS_KEY, AWS_SECRET, AWS_REGION = "testing", "testing", "us-east-1"
MOTO_ACCOUNT = "123456789012"
BUCKET = QUEUE = "brain-audio"
#: Task logs go to S3 (moto) as in a multi-machine deployment: the api-server reads a finished task's log
#: from there, whichever worker ran it (the workers' log servers all answer on one host here).
LOG_BUCKET = "airflow-logs"


def find_pg_bin() -> Path:
    candidates = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else []
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("initdb") or "").parent))
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    candidates.sort(key=lambda c: int(Path(c).parent.name) if Path(c).parent.name.isdigit() else 0, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise StackError("PostgreSQL server binaries not found: install Debian's postgresql or set PG_BIN")


def service_command(
    name: str,
    *,
    root: Path,
    ports: Mapping[str, int],
    pg_dir: str,
    run_as: str | None,
    brain_workers: int,
    brain_args: Sequence[str],
) -> tuple[list[str], Path]:
    """The command line and working directory of service ``name``."""
    p = ports
    if name == "postgres":
        command = [str(find_pg_bin() / "postgres"), "-D", f"{pg_dir}/data", "-p", str(p["postgres"])]
        command += ["-k", f"{pg_dir}", "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"]
        command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        if run_as:
            command = ["runuser", "-u", run_as, "--", *command]
        return command, Path(pg_dir)
    if name == "redis":
        command = ["redis-server", "--port", str(p["redis"]), "--bind", "127.0.0.1", "--save", ""]
        return [*command, "--appendonly", "no", "--dir", str(root / name)], root / name
    if name == "moto":
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p["moto"])], root / name
    if name == "brain":
        command = [sys.executable, "-m", "airflow_provider_brain.local", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(p["brain"]), "--data-dir", str(root / "brain" / "data")]
        command += ["--user", BRAIN_USER, "--password", BRAIN_PASSWORD, "--workers", str(brain_workers)]
        # The media it fetches are presigned URLs of moto, which listens on 127.0.0.1.
        command += ["--allow-private-urls", *brain_args]
        return command, REPO_ROOT
    raise KeyError(name)


def service_ready(name: str, *, ports: Mapping[str, int], urls: Mapping[str, str], pg_user: str) -> bool:
    if name == "postgres":
        return pg_ready(ports["postgres"], pg_user)
    if name == "redis":
        return tcp_answers(ports["redis"])
    if name == "moto":
        return http_answers(urls["moto"] + "/moto-api/")
    if name == "brain":
        return http_answers(urls["brain"] + "/users")
    raise KeyError(name)


def pg_ready(port: int, user: str) -> bool:
    if not tcp_answers(port):
        return False
    try:
        import psycopg2

        psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres").close()
        return True
    except Exception:
        return False


def init_postgres(pg_dir: Path, pg_user: str, run_as: str | None, run: Callable[[str, list[str]], None]) -> None:
    """Make the cluster in ``pg_dir/data``; ``run(name, command)`` runs ``initdb`` with its output logged."""
    pg_dir.chmod(0o755)
    (pg_dir / "data").mkdir()
    if run_as:
        shutil.chown(pg_dir, user=run_as, group=run_as)
        shutil.chown(pg_dir / "data", user=run_as, group=run_as)
    command = [str(find_pg_bin() / "initdb"), "-D", str(pg_dir / "data"), "--auth=trust", "--no-sync"]
    command += ["-U", pg_user, "-E", "UTF8"]
    if run_as:
        command = ["runuser", "-u", run_as, "--", *command]
    run("postgres-initdb", command)


def create_databases(port: int, user: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE airflow")
        cursor.execute("CREATE DATABASE warehouse")
    connection.close()


def boto3_client(service: str, moto_url: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name=AWS_REGION,
        aws_access_key_id=AWS_KEY,
        aws_secret_access_key=AWS_SECRET,
    )


def setup_s3(moto_url: str) -> None:
    """Bucket ``brain-audio`` notifies queue ``brain-audio`` of every new object (moto delivers it);
    bucket ``airflow-logs`` holds the task logs."""
    sqs, s3 = boto3_client("sqs", moto_url), boto3_client("s3", moto_url)
    s3.create_bucket(Bucket=LOG_BUCKET)
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    # S3 sends an ``s3:TestEvent`` when notifications are configured; drop it so the first DAG run an
    # event-driven DAG sees comes from a real object.
    sqs.purge_queue(QueueUrl=queue_url)
