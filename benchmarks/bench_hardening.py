"""Hostile input against a private stack: how long a 3 GiB-inflating .docx takes to end
`failed` while another project's small file is ingested, and how long 80 MB of sandbox stdout
takes to come back truncated through a run. Needs Docker and the sandbox image."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from _stack import bench_stack  # noqa: E402

ROUNDS = 3


def _image() -> str:
    subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "ensure_docker.sh")], check=True)
    return subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "build.sh")], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]


def _wait(client, store_id: str, file_id: str) -> str:
    while (entry := client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)).status \
            == "in_progress":
        time.sleep(0.05)
    return entry.status


def _timed_ingest(client, name: str, data: bytes, out: dict, key: str) -> None:
    started = time.monotonic()
    store = client.vector_stores.create()
    uploaded = client.files.create(file=(name, io.BytesIO(data)), purpose="assistants")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
    out[key] = (_wait(client, store.id, uploaded.id), time.monotonic() - started)


def main() -> None:
    import openai

    from tests.conftest import new_project_key
    from tests.fake_upstream import Reply
    from tests.support.hostile import docx_bomb

    started = time.monotonic()
    bomb = docx_bomb(3 << 30)
    print(f"3 GiB-inflating docx: {len(bomb) / 1e6:.1f} MB compressed (built in "
          f"{time.monotonic() - started:.1f} s)")
    with bench_stack({"SANDBOX_IMAGE": _image(), "SANDBOX_WARM_POOL_SIZE": "1"}) as (
            stack, upstream, base_url, key):
        upstream.instant = False
        attacker = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
        bystander = openai.OpenAI(base_url=base_url, api_key=new_project_key(stack), max_retries=0)
        for round_number in range(ROUNDS):
            results: dict = {}
            first = threading.Thread(target=_timed_ingest, args=(attacker, "bomb.docx", bomb, results, "bomb"))
            first.start()
            time.sleep(0.2)
            _timed_ingest(bystander, "small.txt", b"a small and ordinary file", results, "small")
            first.join()
            print(f"round {round_number + 1}: bomb ended {results['bomb'][0]} in {results['bomb'][1]:.2f} s; "
                  f"other project's small file {results['small'][0]} in {results['small'][1]:.2f} s")

        coder = attacker.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        code = "import sys\n_ = sys.stdout.write('y' * 80_000_000)"

        def respond(request):
            if not [m for m in request["messages"] if m["role"] == "tool"]:
                return Reply(tool_calls=[("python", json.dumps({"code": code}))])
            return Reply(text="done")

        upstream.set_responder(respond)
        thread = attacker.beta.threads.create(messages=[{"role": "user", "content": "warm up"}])
        attacker.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=coder.id,
                                                   poll_interval_ms=50)
        for round_number in range(ROUNDS):
            attacker.beta.threads.messages.create(thread.id, role="user", content="again")
            begun = time.monotonic()
            run = attacker.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=coder.id,
                                                             poll_interval_ms=50)
            elapsed = time.monotonic() - begun
            steps = attacker.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
            logs = [s for s in steps if s.type == "tool_calls"][0].step_details.tool_calls[0] \
                .code_interpreter.outputs[0].logs
            print(f"round {round_number + 1}: 80 MB of stdout -> run {run.status} in {elapsed:.2f} s, "
                  f"step logs {len(logs)} characters")


if __name__ == "__main__":
    main()
