"""The demo: audio lands in S3, Brain transcribes it, the transcripts are queryable in a warehouse.

Everything runs on this machine: the project's local Brain server (real speech recognition),
moto's S3 API server, an SQLite warehouse file, and Airflow's ``airflow dags test`` running the
``brain_s3_to_warehouse`` example DAG. Run it with ``make demo``; it stops what it started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".demo"
LOGS = WORK / "logs"
BIN = Path(sys.executable).parent
BUCKET = "brain-audio"
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call stella and ask her to bring these things with her from the store",
    "we will meet at the station at nine in the morning",
    "she sells sea shells by the sea shore",
]


class StepFailed(Exception):
    pass


@contextmanager
def step(title: str, log: Path | None = None) -> Iterator[None]:
    print(f"==> {title}", flush=True)
    started = time.monotonic()
    try:
        yield
    except Exception as err:
        where = f"; log: {log}" if log else ""
        raise StepFailed(f"step '{title}' failed: {err}{where}") from err
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - our own local server
            return
        except urllib.error.HTTPError:
            return  # Any HTTP answer (401 from Brain) means it is serving.
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no answer at {url} after {timeout:g} s")


def start(name: str, args: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    log = LOGS / f"{name}.log"
    with step(f"Starting {name} at {url}", log):
        process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        wait_for_http(url, process)
    return process


def synthesise(text: str, out: Path) -> None:
    text_file = out.with_suffix(".txt")
    text_file.write_text(text + "\n")
    subprocess.run(
        ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(out), str(text_file)],
        check=True,
        capture_output=True,
    )


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    LOGS.mkdir(parents=True)
    processes: list[subprocess.Popen] = []
    try:
        brain_port, s3_port = free_port(), free_port()
        brain_url, s3_url = f"http://127.0.0.1:{brain_port}", f"http://127.0.0.1:{s3_port}"
        processes.append(
            start(
                "brain-local",
                [str(BIN / "brain-local"), "serve", "--host", "127.0.0.1", "--port", str(brain_port)]
                + ["--data-dir", str(WORK / "brain"), "--user", "demo", "--password", "demo"]
                # The audio is fetched from presigned URLs of the S3 emulator, which listens on 127.0.0.1.
                + ["--allow-private-urls"],
                brain_url + "/assets",
            )
        )
        processes.append(
            start("moto-s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)], s3_url)
        )

        audio = WORK / "audio"
        audio.mkdir()
        with step(f"Synthesising {len(SENTENCES)} spoken sentences with Festival and uploading them to S3"):
            import boto3

            s3 = boto3.client(
                "s3",
                endpoint_url=s3_url,
                region_name="us-east-1",
                aws_access_key_id="demo",
                aws_secret_access_key="demo",  # noqa: S106 - moto accepts anything
            )
            s3.create_bucket(Bucket=BUCKET)
            for i, sentence in enumerate(SENTENCES):
                wav = audio / f"call-{i + 1}.wav"
                synthesise(sentence, wav)
                s3.upload_file(str(wav), BUCKET, f"incoming/{wav.name}")
                print(f'    s3://{BUCKET}/incoming/{wav.name}: "{sentence}"')

        warehouse = WORK / "warehouse.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update(
            AIRFLOW_HOME=str(WORK / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "example_dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW_CONN_BRAIN_DEFAULT=json.dumps(
                {"conn_type": "brain", "host": brain_url, "login": "demo", "password": "demo"}
            ),
            AIRFLOW_CONN_AWS_DEFAULT=json.dumps(
                {
                    "conn_type": "aws",
                    "login": "demo",
                    "password": "demo",
                    "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
                }
            ),
            AIRFLOW_CONN_BRAIN_WAREHOUSE=json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        )
        airflow = str(BIN / "airflow")
        log = LOGS / "airflow-db-migrate.log"
        with step("Creating Airflow's metadata database", log):
            subprocess.run(
                [airflow, "db", "migrate"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, check=True
            )

        log = LOGS / "dag-test.log"
        with step("Running the brain_s3_to_warehouse DAG (airflow dags test)", log):
            with log.open("wb") as out:
                run = subprocess.Popen(
                    [airflow, "dags", "test", "brain_s3_to_warehouse"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                finished = ""
                for line in run.stdout:  # type: ignore[union-attr]
                    out.write(line)
                    text = line.decode(errors="replace")
                    if match := re.search(r"\[DAG TEST\] end task task_id=(\S+) map_index=(\S+)", text):
                        index = "" if match.group(2) == "-1" else f"[{match.group(2)}]"
                        print(f"    task {match.group(1)}{index} finished", flush=True)
                    if "DagRun Finished" in text:
                        finished = text
                run.wait()
            if run.returncode != 0 or "state=success" not in finished:
                raise RuntimeError("the DAG run did not succeed")

        with step(f"Reading the warehouse ({warehouse.relative_to(ROOT)})"):
            with sqlite3.connect(warehouse) as db:
                rows = db.execute(
                    "SELECT asset_id, source, duration, transcript, mean_confidence FROM transcripts ORDER BY source"
                ).fetchall()
                words = db.execute("SELECT COUNT(*) FROM transcript_words").fetchone()[0]
        print()
        print(f"{'asset_id':<17} {'source':<36} {'dur s':>5} {'conf':>5}  transcript")
        for asset_id, source, duration, transcript, confidence in rows:
            print(f"{asset_id:<17} {source:<36} {duration:>5.1f} {confidence:>5.2f}  {transcript}")
        print(f"\n{len(rows)} transcripts and {words} timed words in the transcripts / transcript_words tables.")
        return 0
    except StepFailed as err:
        print(f"\nDEMO FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
