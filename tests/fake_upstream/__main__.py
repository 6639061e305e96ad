"""python -m tests.fake_upstream --port 8100 [--instant]: serve until killed."""

import argparse
import time

from tests.fake_upstream.server import FakeUpstream

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8100)
parser.add_argument("--instant", action="store_true", help="ignore every scripted delay")
arguments = parser.parse_args()
upstream = FakeUpstream(port=arguments.port)
upstream.instant = arguments.instant
upstream.start()
print(upstream.base_url, flush=True)
while True:
    time.sleep(3600)
