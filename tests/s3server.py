"""A real S3 server for the tests: moto in server mode (``moto_server``), in a process of its own
on a free loopback port, reached through the standard AWS variables as a user reaches MinIO.

moto keeps buckets in memory and accepts any credentials unless ``enforce_auth`` is given: then
every request after the first few must be signed with a key of moto's own IAM, which is how
the tests get "access denied" and "unknown key" answers from a real server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "expbook-test", "AWS_SECRET_ACCESS_KEY": "expbook-secret"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """``moto_server`` on 127.0.0.1; ``env`` points boto3/s3fs (and child processes) at it.

    Args:
        unauthenticated: with a number, only that many requests are served without checking
            the signature (moto's ``INITIAL_NO_AUTH_ACTION_COUNT``): enough to create a
            bucket and IAM users; every later one needs a key of such a user.
    """

    def __init__(self, *, unauthenticated: int | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        extra = {} if unauthenticated is None else {
            "INITIAL_NO_AUTH_ACTION_COUNT": str(unauthenticated)
        }  # fmt: skip
        self.process = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **extra},
        )
        self._wait_until_listening()

    @property
    def env(self) -> dict[str, str]:
        """The variables a user sets for an S3-compatible server (docs/artifacts.md)."""
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # no wait for an EC2 instance's credentials
        }

    def client(self, service: str = "s3", **keys: str) -> object:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys.get("key", CREDENTIALS["AWS_ACCESS_KEY_ID"]),
            aws_secret_access_key=keys.get("secret", CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        )

    def create_bucket(self) -> str:
        """A new, empty bucket; returns its name."""
        name = f"expbook-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def pending_uploads(self, bucket: str) -> list[str]:
        """The keys of multipart uploads begun and neither completed nor aborted."""
        found = self.client().list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
        return [upload["Key"] for upload in found.get("Uploads", [])]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_until_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError(f"moto_server did not listen on port {self.port} in {timeout:g} s")
