"""The floor under any gRPC Python server: a bare bidirectional echo over loopback.

A server process answers each request on one stream with a reply the size of a weight
set; one client sends a message and waits for the answer, as a worker with one push in
flight does. Reports round trips per second and the server's CPU per message.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from concurrent import futures

REPLY_BYTES = 28_000  # about one Pendulum weight set of the seed's networks
METHOD = "/bench.Echo/Echo"


def _serve(conn) -> None:
    import grpc

    from a3c.v1 import a3c_pb2 as pb

    reply = pb.Tensor(data=b"\0" * REPLY_BYTES)

    def echo(requests, context):
        for _ in requests:
            yield reply

    handler = grpc.stream_stream_rpc_method_handler(
        echo, request_deserializer=pb.Tensor.FromString,
        response_serializer=pb.Tensor.SerializeToString,
    )  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(4))
    service = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})
    server.add_generic_rpc_handlers([service])
    conn.send(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    while conn.recv() == "cpu":
        conn.send(time.process_time())
    server.stop(None)


def echo(seconds: float) -> dict:
    """{"round_trips_s", "server_cpu_ms"} of one client over about `seconds`."""
    import grpc

    from a3c.v1 import a3c_pb2 as pb

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        pending: queue.Queue = queue.Queue()

        def requests():
            while (message := pending.get()) is not None:
                yield message

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(
                METHOD, request_serializer=pb.Tensor.SerializeToString,
                response_deserializer=pb.Tensor.FromString,
            )(requests())  # fmt: skip
            message = pb.Tensor(data=b"\0" * 200)

            def round_trip():
                pending.put(message)
                next(call)

            for _ in range(100):
                round_trip()
            parent.send("cpu")
            cpu0, n, start = parent.recv(), 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                round_trip()
                n += 1
            wall = time.perf_counter() - start
            parent.send("cpu")
            cpu1 = parent.recv()
            pending.put(None)
        return {"round_trips_s": n / wall, "server_cpu_ms": (cpu1 - cpu0) / n * 1e3}
    finally:
        parent.send("stop")
        proc.join(10)
