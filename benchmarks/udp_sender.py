"""``python -m benchmarks.udp_sender SPEC``: a MoldUDP64 sender in its own process for the ingest suite.

The same protocol as ``benchmarks.service_client`` (one JSON object per line):
it reads the day file named in the spec and encodes its packets
(``MoldUDP64Server.encoded``; ``max_payload`` bytes of blocks per packet),
prints ``{"ready": {"packets": N, "messages": M}}``, waits for one line on
stdin, sends every packet with ``sendmmsg`` paced at the spec's ``rate``
messages per second (0: as fast as it can) and three end-of-session
packets, then prints ``{"result": {"seconds": S}}`` (the sending time) and
exits. Its own process,
so sending takes the other core, not the receiver's GIL.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

from riskcore_services.ingest.simulate import MoldUDP64Server, split_messages


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    messages = split_messages(pathlib.Path(spec["file"]).read_bytes())
    sender = MoldUDP64Server(messages, (spec["host"], spec["port"]), session=spec["session"],
                             max_payload=spec["max_payload"])
    try:
        data, offsets, _ = sender.encoded()
        print(json.dumps({"ready": {"packets": len(offsets) - 1, "messages": len(messages)}}), flush=True)
        sys.stdin.readline()
        started = time.perf_counter()
        packets_per_second = spec["rate"] * (len(offsets) - 1) / len(messages)
        sender.send(data, offsets, burst=spec["burst"], pause=0.0, rate=packets_per_second or None)
        seconds = time.perf_counter() - started
        sender.end_session(3, 0.05)
    finally:
        sender.stop()
    print(json.dumps({"result": {"seconds": seconds}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
