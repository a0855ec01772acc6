"""Which S3 client the s3 state store uses, by figures: for each candidate, in a fresh process,
the time to import it, to make a client, one GET and one conditional PUT against the loopback
S3 server (tests/fakes/s3.py: moto checking SigV4 like MinIO), and the process's peak RSS; and
whether it can express the store's conditional writes (`If-None-Match: *`, `If-Match: ETAG`).

    .venv/bin/python bench/s3_clients.py                 # the candidates this python has
    .venv/bin/python bench/s3_clients.py --python /tmp/venv/bin/python --runs 5

The server runs in this process; each candidate runs `--runs` times in a child of `--python`
(which needs only the candidate, not the project). A candidate that is not installed there is
listed as such. Nothing here is part of the product.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.s3 import REGION, S3Server

BUCKET = "bench"
KEY = "state/my-app"

# Each child prints one JSON line: seconds for import, client, get, put; conditional checks.
_PRELUDE = """
import json, os, sys, time
url, user, password, region, bucket, key = sys.argv[1:7]
t0 = time.perf_counter()
"""
_EPILOGUE = """
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child of this (big) process
# would report the parent's peak.
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"import": t1 - t0, "client": t2 - t1, "get": t3 - t2, "put": t4 - t3,
                  "rss_mb": rss, "if_none_match": create_refused, "if_match": stale_refused}))
"""

CANDIDATES: dict[str, str] = {
    # botocore alone: what boto3 wraps, without boto3's resource layer.
    "botocore": """
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
t1 = time.perf_counter()
s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url=url, region_name=region, aws_access_key_id=user,
    aws_secret_access_key=password,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
t2 = time.perf_counter()
got = s3.get_object(Bucket=bucket, Key=key)
etag = got["ETag"]; got["Body"].read()
t3 = time.perf_counter()
s3.put_object(Bucket=bucket, Key=key, Body=b"new", IfMatch=etag)
t4 = time.perf_counter()
def refused(**kw):
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", **kw)
        return False
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] == 412
create_refused = refused(IfNoneMatch="*")
stale_refused = refused(IfMatch=etag)
""",
    "boto3": """
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
t1 = time.perf_counter()
s3 = boto3.client(
    "s3", endpoint_url=url, region_name=region, aws_access_key_id=user,
    aws_secret_access_key=password,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
t2 = time.perf_counter()
got = s3.get_object(Bucket=bucket, Key=key)
etag = got["ETag"]; got["Body"].read()
t3 = time.perf_counter()
s3.put_object(Bucket=bucket, Key=key, Body=b"new", IfMatch=etag)
t4 = time.perf_counter()
def refused(**kw):
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", **kw)
        return False
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] == 412
create_refused = refused(IfNoneMatch="*")
stale_refused = refused(IfMatch=etag)
""",
    # minio's put_object prefixes any header it does not know with X-Amz-Meta-: If-Match and
    # If-None-Match become metadata, so its plain PUT is what it can do (the checks say so).
    "minio": """
import io
from minio import Minio
from minio.error import S3Error
t1 = time.perf_counter()
s3 = Minio(url.split("//", 1)[1], access_key=user, secret_key=password, secure=False,
           region=region)
t2 = time.perf_counter()
got = s3.get_object(bucket, key)
etag = '"%s"' % got.headers["ETag"].strip('"'); got.read(); got.close(); got.release_conn()
t3 = time.perf_counter()
s3.put_object(bucket, key, io.BytesIO(b"new"), 3, metadata={"If-Match": etag})
t4 = time.perf_counter()
def refused(**kw):
    try:
        s3.put_object(bucket, key, io.BytesIO(b"x"), 1, metadata=kw)
        return False
    except S3Error as e:
        return e.response.status == 412
create_refused = refused(**{"If-None-Match": "*"})
stale_refused = refused(**{"If-Match": etag})
""",
    "obstore": """
from obstore.store import S3Store
import obstore
t1 = time.perf_counter()
s3 = S3Store(bucket, endpoint=url, access_key_id=user, secret_access_key=password,
             region=region, client_options={"allow_http": True}, virtual_hosted_style_request=False)
t2 = time.perf_counter()
got = obstore.get(s3, key)
etag = got.meta["e_tag"]; got.bytes()
t3 = time.perf_counter()
obstore.put(s3, key, b"new", mode={"e_tag": etag})
t4 = time.perf_counter()
def refused(mode):
    try:
        obstore.put(s3, key, b"x", mode=mode)
        return False
    except Exception as e:
        return "precondition" in str(e).lower() or "AlreadyExists" in type(e).__name__ \\
            or "Precondition" in type(e).__name__
create_refused = refused("create")
stale_refused = refused({"e_tag": etag})
""",
}


def run_one(python: str, name: str, server: S3Server) -> dict[str, float | bool] | str:
    """One fresh process: its figures, or why it could not run."""
    server.put_object(BUCKET, KEY, b"old")
    code = _PRELUDE + CANDIDATES[name] + _EPILOGUE
    argv = [python, "-c", code, server.url, server.user, server.password, REGION, BUCKET, KEY]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return "not installed" if "ModuleNotFoundError" in last else last[:100]
    result: dict[str, float | bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the python to run clients in")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per candidate")
    args = parser.parse_args()
    print(f"S3 clients in a fresh process ({args.python}), median of {args.runs} runs")
    head = (
        f"{'client':<10} {'import':>8} {'client':>8} {'GET':>8} {'PUT':>8} {'total':>8} "
        f"{'RSS MB':>7}  conditional PUT (If-None-Match / If-Match refused with 412)"
    )
    print(head)
    with S3Server() as server:
        server.create_bucket(BUCKET)
        for name in CANDIDATES:
            runs = [run_one(args.python, name, server) for _ in range(args.runs)]
            failed = next((r for r in runs if isinstance(r, str)), None)
            if failed is not None:
                print(f"{name:<10} {failed}")
                continue
            figures = [r for r in runs if isinstance(r, dict)]

            def median(field: str, figures: list[dict[str, float | bool]] = figures) -> float:
                return statistics.median(float(r[field]) for r in figures)

            total = sum(median(f) for f in ("import", "client", "get", "put"))
            ok = f"{figures[0]['if_none_match']} / {figures[0]['if_match']}"
            print(
                f"{name:<10} {median('import'):>7.3f}s {median('client'):>7.3f}s "
                f"{median('get'):>7.3f}s {median('put'):>7.3f}s {total:>7.3f}s "
                f"{median('rss_mb'):>7.1f}  {ok}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
