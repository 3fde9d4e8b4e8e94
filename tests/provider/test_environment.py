"""What the provider needs of the environment Airflow runs in, on every release CI tests (the floor suite runs
tests/provider too).

A deferring task's trigger arguments are stored encrypted with Airflow's Fernet key. Airflow 3.1.8's ``get_fernet``
sets an attribute on cryptography's ``MultiFernet``, which cryptography 51 no longer allows: the first encryption in
each process fails there, so ``airflow dags test`` of a deferrable task failed with "Database error occurred" when
it deferred. The README's Limits tell 3.1 users to keep cryptography below 51 (Airflow 3.1's constraints pin it),
and ``scripts/setup.sh floor`` does; this test fails the day the floor's environment stops doing so.
"""

from __future__ import annotations

import subprocess
import sys

from cryptography.fernet import Fernet

ENCRYPT_IN_A_NEW_PROCESS = """
from airflow.models.crypto import get_fernet
token = get_fernet().encrypt(b"trigger arguments")
assert get_fernet().decrypt(token) == b"trigger arguments"
print("encrypted")
"""


def test_airflow_encrypts_with_a_fernet_key_in_a_new_process(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", ENCRYPT_IN_A_NEW_PROCESS], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "encrypted", done.stderr[-3000:]
