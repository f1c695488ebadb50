"""``python -m siamdeploy.serve MODEL``: serve a tracker to many camera streams on Triton Inference Server.

MODEL is a checkpoint or an export folder (as for ``python -m siamdeploy.run --model``). One engine is loaded;
every stream gets its own tracker on it, and Triton's dynamic batcher gathers concurrent streams into one
batched search. Clients: ``siamdeploy.serve.Client("HOST:HTTP_PORT")`` or ``python -m siamdeploy.run VIDEO
--server HOST:HTTP_PORT --init X,Y,W,H``. Listens on 127.0.0.1 unless --host says otherwise. Ctrl-C or SIGTERM
stops the server and its processes. Protocol and scaling out: docs/serving.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from ..cli import add_engine_group, add_model_group, check_engine_args, check_model_args, run_cli
from ..errors import InputError
from . import protocol as P

log = logging.getLogger("siamdeploy.serve")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siamdeploy.serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="checkpoint (.pth/.model) or export folder")
    add_model_group(ap, model="none")
    add_engine_group(ap)
    net = ap.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 exposes the server "
                          "to the network: only on purpose)")
    net.add_argument("--http-port", type=int, default=P.DEFAULT_HTTP_PORT, help="HTTP port (default 8000)")
    net.add_argument("--grpc-port", type=int, default=P.DEFAULT_GRPC_PORT, help="gRPC port (default 8001)")
    net.add_argument("--metrics-port", type=int, default=P.DEFAULT_METRICS_PORT,
                     help="Prometheus metrics port (default 8002)")
    net.add_argument("--max-streams", type=int, default=64, help="open streams at most (default 64)")
    net.add_argument("--max-batch", type=int, default=32,
                     help="requests Triton gathers into one batch at most (default 32)")
    net.add_argument("--queue-delay-us", type=int, default=2000,
                     help="how long Triton waits for more requests to fill a batch, microseconds (default 2000)")
    net.add_argument("--stream-timeout", type=float, default=60.0,
                     help="seconds without a request after which a stream is dropped (default 60)")
    ap.add_argument("-q", "--quiet", action="store_true", help="less output")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_cli(build_parser(), _serve, argv)


def _serve(args: argparse.Namespace) -> int:
    from .. import load_tracker
    from .server import ServerAddress, check_ports, start_server
    from .streams import StreamTable

    check_engine_args(args)
    check_model_args(args, args.model)
    if args.max_streams < 1:
        raise InputError(f"--max-streams must be at least 1, got {args.max_streams}")
    if not args.stream_timeout > 0:
        raise InputError(f"--stream-timeout must be positive seconds, got {args.stream_timeout}")
    address = ServerAddress(args.host, args.http_port, args.grpc_port, args.metrics_port)
    check_ports(address)  # before loading the model: a busy port is a one-line error at once
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the server is reachable from other machines (no authentication)", args.host)
    prototype = load_tracker(args.model, config=args.config, preset=args.preset, backend=args.backend,
                             device=args.device, allow_unsafe_pickle=args.trust_checkpoint, precision=args.precision)
    engine = prototype.engine
    table = StreamTable(engine, prototype.params, prototype.name, max_streams=args.max_streams,
                        timeout_s=args.stream_timeout)
    server = None
    try:
        server = start_server(table, address, max_batch=args.max_batch, queue_delay_us=args.queue_delay_us)
        print(f"siamdeploy.serve ready: model {args.model} ({prototype.name}, {engine.describe()}); "
              f"http {address.host}:{address.http_port}, grpc {address.host}:{address.grpc_port}, metrics "
              f"{address.host}:{address.metrics_port}; up to {args.max_streams} streams, batches of up to "
              f"{args.max_batch}", flush=True)
        while server.is_alive():
            time.sleep(0.5)
        print("error: the Triton server stopped by itself; see its log above", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        engine.close()
        print(f"siamdeploy.serve stopped: {json.dumps(table.stats.as_dict())}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
