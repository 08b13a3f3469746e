"""A faust agent that calls the model once per record, as the seed talk's app did: decode,
score one request, encode, ``topic.send``, for every event. Runs until stopped.

    python -m bench.contenders.faust_per_record BOOTSTRAP IN OUT GROUP MODEL_DIR PORT DATA_DIR
"""

from __future__ import annotations

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


def main(bootstrap: str, source: str, sink: str, group: str, model_path: str, port: str,
         data_dir: str) -> None:
    app = faust.App(group, broker=f"kafka://{bootstrap}", broker_session_timeout=3,
                    broker_heartbeat_interval=0.5, broker_commit_interval=1,
                    web_port=int(port), web_bind="127.0.0.1", store="memory://",
                    datadir=data_dir, autodiscover=False)
    model, codec = load_savedmodel(Path(model_path)), Codec()
    inbound = app.topic(source, key_serializer="raw", value_serializer="raw")
    outbound = app.topic(sink, key_serializer="raw", value_serializer="raw")

    @app.agent(inbound)
    async def score(stream: Any) -> None:
        async for event in stream.events():
            result = score_batch([_Message(event.message)], model, "bench", "v1", codec,
                                 int(time.time() * 1000))
            for out in result.predictions:
                await outbound.send(key=out.key, value=out.value)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    sys.argv, args = sys.argv[:1], sys.argv[1:8]  # faust reads the command line too
    main(*args)
