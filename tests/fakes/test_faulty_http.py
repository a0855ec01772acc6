"""The fault-injecting proxy (tests/fakes/faulty_http.py) in front of the S3 server: requests
forwarded byte for byte (SigV4 signatures made for the proxy still verify), and faults only
where and as often as asked."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from runner.base.errors import StoreError
from runner.state.base import StateRef
from runner.state.s3 import S3Store
from tests.fakes.faulty_http import FaultProxy
from tests.s3support import S3Endpoint, s3_endpoint

REF = StateRef("s", "state", "default")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    yield from s3_endpoint()


@pytest.fixture
def proxy(s3: S3Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(s3.url) as proxy:
        yield proxy


def store(s3: S3Endpoint, proxy: FaultProxy, bucket: str) -> S3Store:
    return S3Store(f"//{bucket}", s3.env(AWS_ENDPOINT_URL=proxy.url), 5)


def test_signed_requests_pass_through_unchanged(s3, proxy):
    bucket = s3.new_bucket()
    version = store(s3, proxy, bucket).save(REF, {"a": b"1" * 100_000}, expected=None)
    loaded = store(s3, proxy, bucket).load(REF)
    assert loaded is not None and loaded.files == {"a": b"1" * 100_000}
    assert loaded.version == version
    assert [(m, s) for m, _, s in proxy.requests] == [("PUT", 200), ("GET", 200)]


def test_a_503_on_get_is_retried_by_the_client(s3, proxy):
    bucket = s3.new_bucket()
    store(s3, proxy, bucket).save(REF, {"a": b"1"}, expected=None)
    proxy.fail(rate=1.0, only=["GET"], times=1)
    loaded = store(s3, proxy, bucket).load(REF)
    assert loaded is not None and loaded.files == {"a": b"1"}
    assert proxy.count("GET", "/state", 503) == 1 and proxy.count("GET", "/state", 200) == 1


def test_faults_switched_on_over_http_keep_to_their_method_path_and_count(s3, proxy):
    bucket = s3.new_bucket()
    spec = {"rate": 1.0, "only": ["PUT"], "suffix": "/other"}
    request = urllib.request.Request(
        f"{proxy.url}/_fake/fail", json.dumps(spec).encode(), method="POST"
    )
    assert urllib.request.urlopen(request, timeout=5).read() == b"ok\n"
    store(s3, proxy, bucket).save(REF, {"a": b"1"}, expected=None)  # another path: untouched
    with pytest.raises(StoreError, match="cannot save state"):
        store(s3, proxy, bucket).save(StateRef("s", "other", "default"), {"a": b"1"})
    assert proxy.count("PUT", "/other", 503) == 3  # a try and the client's two retries
    assert proxy.count("PUT", "/state", 200) == 1
