"""A GCS emulator that honours ``ifGenerationMatch=0``: gcp-storage-emulator plus GCS's documented 412.

gcp-storage-emulator 2026.7.19 ignores upload preconditions (measured: a second upload with
``if_generation_match=0`` overwrites the object), so on it the hour lease's probe refuses the store, as it
should (tests/integration/test_lease_on_s3.py, ``TestGcsEmulatorAsShipped``). To run the lease's behaviour
against GCS semantics, this module starts the same emulator in a process of its own with one addition, made
to the emulator's upload handler (third-party code; none of ours is touched): an upload (media, multipart or
resumable start) with ``ifGenerationMatch=0`` whose object exists is answered ``412 conditionNotMet``, as
GCS answers it (https://cloud.google.com/storage/docs/request-preconditions). The emulator's HTTP server
handles one request at a time, so the check and the write cannot interleave with another upload.

Run: ``python -m tests.support.gcs_preconditions --port N``; :func:`gcs_with_preconditions` does that for a
test and yields the ``STORAGE_EMULATOR_HOST`` value.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _honour_if_generation_match() -> None:
    """Wrap the emulator's ``objects.insert`` (every route that names it, and the router's fallback)."""
    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    original = objects.insert

    def insert(request, response, storage, *args, **kwargs):
        wanted = request.query.get("ifGenerationMatch")
        if wanted and wanted[0] == "0":
            name = request.query.get("name", [None])[0]
            if name is None and isinstance(request.data, dict):
                name = (request.data.get("meta") or request.data).get("name")
            try:
                storage.get_file_obj(request.params["bucket_name"], name)
            except NotFound:
                pass
            else:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-conditions you specified did not hold.",
                            "errors": [{"reason": "conditionNotMet", "location": "If-Match"}],
                        }
                    }
                )
                return None
        return original(request, response, storage, *args, **kwargs)

    objects.insert = insert  # the router's fallback for uploads posted without the /upload prefix
    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                handlers[method] = insert


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from gcp_storage_emulator.server import create_server

    _honour_if_generation_match()
    create_server("127.0.0.1", args.port, in_memory=True).run()


@contextmanager
def gcs_with_preconditions(preconditions: bool = True) -> Iterator[str]:
    """Start the emulator of this module on a free port; yields ``http://127.0.0.1:<port>``, stops it after.

    :param preconditions: False starts gcp-storage-emulator as shipped (its own command), which ignores them.
    """
    import requests

    from stack import ports
    from tests.support.waiting import wait_for

    port = ports.free_port()
    ours = [sys.executable, "-m", "tests.support.gcs_preconditions", "--port", str(port)]
    shipped = [str(Path(sys.executable).parent / "gcp-storage-emulator"), "start", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        ours if preconditions else [*shipped, "--port", str(port), "--in-memory"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the GCS emulator exited with {proc.returncode}")
        try:
            return requests.get(endpoint + "/", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_for(up, 30, "the GCS emulator with preconditions")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)
        ports.release([port])


if __name__ == "__main__":
    main()
