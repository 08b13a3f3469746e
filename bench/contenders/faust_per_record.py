"""Baseline (b): a faust agent that calls the model once per record, as the seed talk's app
did: decode, score one request, encode, ``topic.send``, for every event.

    python -m bench.contenders.faust_per_record BOOTSTRAP IN OUT MODEL_DIR N WEB_PORT
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import faust

from edml.codec import Codec
from edml.savedmodel import load_savedmodel
from services.batch import score_batch


class _Message:
    """faust's message, as the scoring code reads a message."""

    def __init__(self, m: Any) -> None:
        self._m = m

    def key(self) -> bytes | None:
        return self._m.key  # type: ignore[no-any-return]

    def value(self) -> bytes | None:
        return self._m.value  # type: ignore[no-any-return]

    def topic(self) -> str:
        return self._m.topic  # type: ignore[no-any-return]

    def partition(self) -> int:
        return self._m.partition  # type: ignore[no-any-return]

    def offset(self) -> int:
        return self._m.offset  # type: ignore[no-any-return]

    def timestamp(self) -> tuple[int, int]:
        return (1, int(self._m.timestamp * 1000))


def main(bootstrap: str, source: str, sink: str, model_path: str, n: int, port: int) -> None:
    app = faust.App("bench-faust", broker=f"kafka://{bootstrap}", broker_session_timeout=3,
                    broker_heartbeat_interval=0.5, broker_commit_interval=1,
                    web_port=port, web_bind="127.0.0.1", store="memory://",
                    datadir=f"/tmp/bench-faust-{port}", autodiscover=False)
    model, codec = load_savedmodel(Path(model_path)), Codec()
    inbound = app.topic(source, key_serializer="raw", value_serializer="raw")
    outbound = app.topic(sink, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0}

    @app.agent(inbound)
    async def score(stream: Any) -> None:
        async for event in stream.events():
            result = score_batch([_Message(event.message)], model, "bench", "v1", codec,
                                 int(time.time() * 1000))
            for out in result.predictions:
                await outbound.send(key=out.key, value=out.value)
            seen["n"] += 1
            if seen["n"] >= n:
                await app.producer.flush()  # every output delivered, then stop at once
                os._exit(0)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    bootstrap, source, sink, model_path = sys.argv[1:5]
    main(bootstrap, source, sink, model_path, int(sys.argv[5]), int(sys.argv[6]))
