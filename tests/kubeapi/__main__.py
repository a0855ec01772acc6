"""python -m tests.kubeapi --port 0 --kubeconfig PATH: serve until SIGTERM or SIGINT.

Prints the server's URL as the first line of stdout once it accepts connections. Another process
can steer it over HTTP: GET /_fake/requests, POST /_fake/reset-counts, POST /_fake/fail (JSON
keyword arguments of FakeKubeAPI.fail), POST /_fake/forbid ({"verb", "resource", "namespace"}),
POST /_fake/allow-all, GET /_fake/objects/{resource}/{namespace}.

With --ca-file PATH it serves HTTPS (a throwaway CA, see server.py) and writes the CA's
certificate to PATH, for a client to verify with (a pod's service account ca.crt); the /_fake/
endpoints are then HTTPS too.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from .control import DEFAULT_USER
from .server import FakeKubeAPI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kubeapi", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    parser.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
    parser.add_argument(
        "--user", default=DEFAULT_USER, help="the identity the kubeconfig's token stands for"
    )
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--reset-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--ca-file", help="serve HTTPS and write the CA that signed its certificate here"
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    api = FakeKubeAPI(args.host, args.port, verbose=args.verbose, tls=bool(args.ca_file))
    if args.ca_file:
        Path(args.ca_file).write_text(api.ca_pem or "")
    api.fail(args.fail_rate, args.fail_status, args.reset_rate, args.latency, args.seed)
    if args.kubeconfig:
        api.write_kubeconfig(args.kubeconfig, namespace=args.namespace, user=args.user)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    api.start()
    print(api.url, flush=True)
    stopping.wait()
    api.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
