"""An S3 endpoint for the s3 store's tests: `$RUNNER_TEST_S3_ENDPOINT` when set (a MinIO, with
its credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), else the loopback moto server
(tests/fakes/s3.py), which checks SigV4 signatures as MinIO does. Each test gets its own bucket."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.fakes.s3 import REGION, S3Server


@dataclass
class S3Endpoint:
    url: str
    user: str
    password: str
    client: Any  # a boto3 client, for the tests' own looks at the bucket

    def env(self, **extra: str) -> dict[str, str]:
        """The AWS_* variables the store reads."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.user,
            "AWS_SECRET_ACCESS_KEY": self.password,
            "AWS_REGION": REGION,
            **extra,
        }

    def new_bucket(self) -> str:
        name = f"state-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
        except self.client.exceptions.NoSuchKey:
            return None

    def keys(self, bucket: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed)


def s3_endpoint() -> Iterator[S3Endpoint]:
    """Yield an endpoint for a module's tests (a generator for a pytest fixture)."""
    url = os.environ.get("RUNNER_TEST_S3_ENDPOINT")
    if url:
        import boto3

        user = os.environ["AWS_ACCESS_KEY_ID"]
        password = os.environ["AWS_SECRET_ACCESS_KEY"]
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=os.environ.get("AWS_REGION", REGION),
            aws_access_key_id=user,
            aws_secret_access_key=password,
        )
        yield S3Endpoint(url, user, password, client)
        return
    with S3Server() as server:
        yield S3Endpoint(server.url, server.user, server.password, server.client)
