"""A small local fake of the Dataproc REST API v1 (``dataproc.googleapis.com/v1``) for the real client.

HTTP on 127.0.0.1 (a free port), JSON in the proto3 JSON mapping (camelCase fields, enums as names),
errors as Google's ``{"error": {"code", "message", "status"}}`` — what google-cloud-dataproc's REST
transport sends and parses. It follows these v1 resources and methods, and nothing else:

* ``projects.regions.clusters``: create (LRO; ``requestId`` dedup: a repeated id returns the first
  request's operation, done once its cluster left CREATING), get, delete (LRO; a ``clusterUuid`` of
  another incarnation, or a cluster already DELETING, is FAILED_PRECONDITION);
* ``projects.regions.jobs``: submit (``requestId`` dedup; a second job of the same id is
  ALREADY_EXISTS; a cluster that does not take jobs — CREATING, ERROR, DELETING — is
  FAILED_PRECONDITION), get, list (``clusterName``, ``jobStateMatcher``), cancel (a job that has
  ended is FAILED_PRECONDITION);
* ``projects.locations.batches``: create (``batchId``, ``requestId``; LRO), get;
* ``projects.regions.operations`` / ``projects.locations.operations``: get, cancel (cancelling a batch's
  operation cancels the batch, as Dataproc does; a finished one is FAILED_PRECONDITION).

FAILED_PRECONDITION goes out as HTTP 400 with ``status: FAILED_PRECONDITION``, as Google's REST endpoints
send it. Races a test cannot time are scripted: ``race_next_create`` (another run's create of the same
name lands just before ours) and :meth:`FakeDataproc.end_after_get` (a job or batch ends just after a GET
has shown it running).

States are scripted, visibly, by the test: a new cluster is CREATING for ``creating_polls`` GETs, then
becomes what ``next_cluster`` says (``RUNNING``, ``ERROR``, ``VANISH``: deleted while being created,
so the next GET is NOT_FOUND, or ``REPLACED``: deleted and created anew by another run, so the next GET
shows a new ``clusterUuid``, CREATING); a deleted cluster is DELETING for one GET, then gone. A job is PENDING,
RUNNING from its first GET, and ends when the test calls :meth:`FakeDataproc.finish` (DONE / ERROR with
its details) or when it is cancelled (CANCELLED). A batch likewise (PENDING → RUNNING → SUCCEEDED /
FAILED / CANCELLED). ``calls`` counts every request by method name, ``created`` every job or batch
really created: the tests count submissions at the endpoint, not in our code.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stack import ports

ACTIVE_JOB_STATES = ("PENDING", "SETUP_DONE", "RUNNING", "CANCEL_PENDING", "CANCEL_STARTED")


class ApiError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


@dataclass
class FakeDataproc:
    """The fake's state and its scripting methods (the server thread and the test share it, under ``lock``)."""

    endpoint: str = ""
    clusters: dict[str, dict] = field(default_factory=dict)  # "project/region/name" -> Cluster
    jobs: dict[str, dict] = field(default_factory=dict)  # "project/region/id" -> Job
    batches: dict[str, dict] = field(default_factory=dict)  # batch name -> Batch
    operations: dict[str, dict] = field(default_factory=dict)  # operation name -> Operation
    requests: dict[str, str] = field(default_factory=dict)  # requestId -> resource key
    calls: Counter = field(default_factory=Counter)
    created: Counter = field(default_factory=Counter)  # "job" / "batch" / "cluster" -> how many created
    next_cluster: str = "RUNNING"
    creating_polls: int = 1
    race_next_create: bool = False
    hidden_jobs: set[str] = field(default_factory=set)  # job ids GetJob does not find (yet)
    ending: dict[str, str] = field(default_factory=dict)  # job / batch id -> state it ends in after its next GET
    lock: threading.RLock = field(default_factory=threading.RLock)
    _polls: Counter = field(default_factory=Counter)

    # -- scripting ---------------------------------------------------------------------------------
    def finish(self, job_id: str, state: str, details: str | None = None) -> None:
        """End job or batch ``job_id`` in ``state`` (DONE / ERROR for jobs; SUCCEEDED / FAILED for batches)."""
        with self.lock:
            for key, job in self.jobs.items():
                if key.endswith(f"/{job_id}"):
                    job["status"] = {"state": state, "details": details or ""}
                    return
            for name, batch in self.batches.items():
                if name.endswith(f"/{job_id}"):
                    batch["state"], batch["stateMessage"] = state, details or ""
                    self.operations[batch["operation"]]["done"] = True
                    return
        raise KeyError(job_id)

    def end_after_get(self, job_id: str, state: str) -> None:
        """End job or batch ``job_id`` in ``state`` right after its next GET has answered (still running)."""
        with self.lock:
            self.ending[job_id] = state

    def _maybe_end(self, job_id: str) -> None:
        if job_id in self.ending:
            self.finish(job_id, self.ending.pop(job_id))

    def job(self, job_id: str) -> dict:
        return next(j for k, j in self.jobs.items() if k.endswith(f"/{job_id}"))

    def batch(self, batch_id: str) -> dict:
        return next(b for n, b in self.batches.items() if n.endswith(f"/{batch_id}"))

    def live_clusters(self) -> dict[str, str]:
        """name -> state of every cluster that exists."""
        return {c["clusterName"]: c["status"]["state"] for c in self.clusters.values()}

    def add_cluster(self, project: str, region: str, name: str, state: str, labels: dict | None = None) -> dict:
        """A cluster that exists already (someone else's, or a broken one), in ``state``."""
        with self.lock:
            cluster = self._cluster(project, region, {"clusterName": name, "labels": labels or {}, "config": {}})
            cluster["status"] = {"state": state, "detail": f"scripted {state}"}
            return cluster

    # -- resources ---------------------------------------------------------------------------------
    def _operation(self, parent: str, done: bool = False, **extra: Any) -> dict:
        name = f"{parent}/operations/{uuid.uuid4()}"
        self.operations[name] = {"name": name, "done": done, **extra}
        return self.operations[name]

    def _cluster(self, project: str, region: str, body: dict) -> dict:
        cluster = {
            **body,
            "projectId": project,
            "clusterUuid": str(uuid.uuid4()),
            "status": {"state": "CREATING"},
            "plan": self.next_cluster,
        }
        self.clusters[f"{project}/{region}/{body['clusterName']}"] = cluster
        self._polls[f"{project}/{region}/{body['clusterName']}"] = 0  # a new incarnation starts CREATING afresh
        self.created["cluster"] += 1
        return cluster

    def handle(self, method: str, path: str, query: dict[str, str], body: dict) -> dict:
        """Answer one request (see the module docstring); ``ApiError`` for an error reply."""
        m = re.fullmatch(r"/v1/projects/([^/]+)/(regions|locations)/([^/]+)/(.*)", path)
        if not m:
            raise ApiError(404, "NOT_FOUND", f"no such method {method} {path}")
        project, kind, region, rest = m.groups()
        with self.lock:
            if kind == "regions" and rest == "clusters" and method == "POST":
                return self._create_cluster(project, region, body, query)
            if kind == "regions" and rest.startswith("clusters/"):
                return self._cluster_op(method, project, region, rest.removeprefix("clusters/"), query)
            if kind == "regions" and rest == "jobs:submit":
                return self._submit(project, region, body)
            if kind == "regions" and rest == "jobs" and method == "GET":
                return self._list_jobs(project, region, query)
            if kind == "regions" and rest.startswith("jobs/"):
                return self._job_op(method, project, region, rest.removeprefix("jobs/"))
            if kind == "locations" and rest == "batches" and method == "POST":
                return self._create_batch(project, region, body, query)
            if kind == "locations" and rest.startswith("batches/") and method == "GET":
                return self._get_batch(f"projects/{project}/locations/{region}/{rest}")
            if rest.startswith("operations/"):
                return self._operation_op(method, path.removeprefix("/v1/"))
        raise ApiError(404, "NOT_FOUND", f"no such method {method} {path}")

    def _create_cluster(self, project: str, region: str, body: dict, query: dict) -> dict:
        self.calls["clusters.create"] += 1
        parent = f"projects/{project}/regions/{region}"
        if query.get("requestId") in self.requests:
            return self.operations[self.requests[query["requestId"]]]
        if self.race_next_create:  # another run's create of this name got there first
            self.race_next_create = False
            self._cluster(project, region, {**body, "labels": {**body.get("labels", {}), "tricloud-created-by": "x"}})
        if f"{project}/{region}/{body['clusterName']}" in self.clusters:
            raise ApiError(409, "ALREADY_EXISTS", f"Already exists: Failed to create cluster: {body['clusterName']}")
        cluster = self._cluster(project, region, body)
        op = self._operation(parent)
        cluster["createOp"] = op["name"]
        if query.get("requestId"):
            self.requests[query["requestId"]] = op["name"]
        return op

    def _cluster_op(self, method: str, project: str, region: str, name: str, query: dict) -> dict:
        key = f"{project}/{region}/{name}"
        cluster = self.clusters.get(key)
        if cluster is None:
            raise ApiError(404, "NOT_FOUND", f"Not found: Cluster projects/{project}/regions/{region}/clusters/{name}")
        if method == "DELETE":
            self.calls["clusters.delete"] += 1
            if query.get("clusterUuid") and query["clusterUuid"] != cluster["clusterUuid"]:
                raise ApiError(400, "FAILED_PRECONDITION", f"cluster {name} has another uuid")
            if cluster["status"]["state"] == "DELETING":
                raise ApiError(400, "FAILED_PRECONDITION", f"Cluster {name} is in state DELETING")
            cluster["status"] = {"state": "DELETING"}
            return self._operation(f"projects/{project}/regions/{region}")
        self.calls["clusters.get"] += 1
        state = cluster["status"]["state"]
        if state == "DELETING" or (state == "CREATING" and cluster["plan"] == "VANISH"):
            del self.clusters[key]
            raise ApiError(404, "NOT_FOUND", f"Not found: Cluster projects/{project}/regions/{region}/clusters/{name}")
        if state == "CREATING":
            self._polls[key] += 1
            if self._polls[key] >= self.creating_polls:
                plan = cluster["plan"]
                if plan == "REPLACED":  # deleted, and another run created a new incarnation of the name
                    del self.clusters[key]
                    again = self._cluster(project, region, {k: cluster[k] for k in ("clusterName", "labels", "config")})
                    again["plan"] = "RUNNING"
                    return {k: v for k, v in again.items() if k not in ("plan", "createOp")}
                if cluster.get("createOp"):
                    self.operations[cluster["createOp"]]["done"] = True
                cluster["status"] = {
                    "state": plan,
                    "detail": "scripted: the cluster failed to start" * (plan == "ERROR"),
                }
        return {k: v for k, v in cluster.items() if k not in ("plan", "createOp")}

    def _submit(self, project: str, region: str, body: dict) -> dict:
        self.calls["jobs.submit"] += 1
        job, request_id = body["job"], body.get("requestId")
        job_id = job.get("reference", {}).get("jobId") or uuid.uuid4().hex
        key = f"{project}/{region}/{job_id}"
        if request_id and self.requests.get(request_id) == key:
            return self.jobs[key]  # the same request again: the job it created
        if key in self.jobs:
            raise ApiError(409, "ALREADY_EXISTS", f"Already exists: Failed to submit job: Job {key}")
        cluster = self.clusters.get(f"{project}/{region}/{job['placement']['clusterName']}")
        if cluster is None:
            raise ApiError(404, "NOT_FOUND", f"Not found: Cluster {job['placement']['clusterName']}")
        if cluster["status"]["state"] not in ("RUNNING", "UPDATING", "ERROR_DUE_TO_UPDATE"):
            state = cluster["status"]["state"]
            raise ApiError(400, "FAILED_PRECONDITION", f"Cluster {cluster['clusterName']} is in state {state}")
        bucket = cluster.get("config", {}).get("configBucket") or "dataproc-staging"
        metainfo = f"gs://{bucket}/google-cloud-dataproc-metainfo/{cluster['clusterUuid']}/jobs/{job_id}"
        self.jobs[key] = {
            **job,
            "reference": {"projectId": project, "jobId": job_id},
            "placement": {**job["placement"], "clusterUuid": cluster["clusterUuid"]},
            "status": {"state": "PENDING"},
            "driverControlFilesUri": f"{metainfo}/",
            "driverOutputResourceUri": f"{metainfo}/driveroutput",
            "jobUuid": str(uuid.uuid4()),
        }
        if request_id:
            self.requests[request_id] = key
        self.created["job"] += 1
        return self.jobs[key]

    def _list_jobs(self, project: str, region: str, query: dict) -> dict:
        self.calls["jobs.list"] += 1
        found = [j for k, j in self.jobs.items() if k.startswith(f"{project}/{region}/")]
        if query.get("clusterName"):
            found = [j for j in found if j["placement"]["clusterName"] == query["clusterName"]]
        if query.get("jobStateMatcher") in ("ACTIVE", "1"):  # the client sends enums as numbers (enum-encoding=int)
            found = [j for j in found if j["status"]["state"] in ACTIVE_JOB_STATES]
        return {"jobs": found}

    def _job_op(self, method: str, project: str, region: str, rest: str) -> dict:
        job_id, _, verb = rest.partition(":")
        job = self.jobs.get(f"{project}/{region}/{job_id}")
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"Not found: Job projects/{project}/regions/{region}/jobs/{job_id}")
        if verb == "cancel":
            self.calls["jobs.cancel"] += 1
            if job["status"]["state"] not in ACTIVE_JOB_STATES:
                raise ApiError(
                    400, "FAILED_PRECONDITION", f"Cannot cancel jobId '{job_id}' in state: '{job['status']}'"
                )
            job["status"] = {"state": "CANCELLED", "details": "Job cancelled by user"}
            return job
        self.calls["jobs.get"] += 1
        if job_id in self.hidden_jobs:
            raise ApiError(404, "NOT_FOUND", f"Not found: Job projects/{project}/regions/{region}/jobs/{job_id}")
        if job["status"]["state"] == "PENDING":
            job["status"] = {"state": "RUNNING"}
        reply = json.loads(json.dumps(job))
        self._maybe_end(job_id)
        return reply

    def _create_batch(self, project: str, region: str, body: dict, query: dict) -> dict:
        self.calls["batches.create"] += 1
        name = f"projects/{project}/locations/{region}/batches/{query.get('batchId') or uuid.uuid4().hex}"
        if query.get("requestId") and query["requestId"] in self.requests:
            return self.operations[self.batches[self.requests[query["requestId"]]]["operation"]]
        if name in self.batches:
            raise ApiError(409, "ALREADY_EXISTS", f"Already exists: Batch {name}")
        op = self._operation(f"projects/{project}/regions/{region}")
        staging = body.get("environmentConfig", {}).get("executionConfig", {}).get("stagingBucket", "dataproc-staging")
        batch_uuid = str(uuid.uuid4())
        self.batches[name] = {
            **body,
            "name": name,
            "uuid": batch_uuid,
            "state": "PENDING",
            "operation": op["name"],
            "runtimeInfo": {"outputUri": f"gs://{staging}/google-cloud-dataproc-metainfo/{batch_uuid}/driveroutput"},
        }
        if query.get("requestId"):
            self.requests[query["requestId"]] = name
        self.created["batch"] += 1
        return op

    def _get_batch(self, name: str) -> dict:
        self.calls["batches.get"] += 1
        batch = self.batches.get(name)
        if batch is None:
            raise ApiError(404, "NOT_FOUND", f"Not found: Batch {name}")
        if batch["state"] == "PENDING":
            batch["state"] = "RUNNING"
        reply = json.loads(json.dumps(batch))
        self._maybe_end(name.rsplit("/", 1)[-1])
        return reply

    def _operation_op(self, method: str, name: str) -> dict:
        name, _, verb = name.partition(":")
        op = self.operations.get(name)
        if op is None:
            raise ApiError(404, "NOT_FOUND", f"Not found: Operation {name}")
        if verb == "cancel":
            self.calls["operations.cancel"] += 1
            if op["done"]:
                raise ApiError(400, "FAILED_PRECONDITION", f"Operation {name} has already finished")
            for batch in self.batches.values():
                if batch["operation"] == name and batch["state"] in ("PENDING", "RUNNING"):
                    batch["state"], batch["stateMessage"] = "CANCELLED", "Batch cancelled by user"
                    op["done"] = True
            return {}
        self.calls["operations.get"] += 1
        return op


def _handler(fake: FakeDataproc) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            try:
                self._reply(200, fake.handle(self.command, url.path, query, body))
            except ApiError as err:
                self._reply(err.code, {"error": {"code": err.code, "message": err.message, "status": err.status}})

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:  # quiet: the tests assert on ``calls``
            pass

    return Handler


@contextmanager
def fake_dataproc() -> Iterator[FakeDataproc]:
    """Serve a :class:`FakeDataproc` on a free port of 127.0.0.1 until the block ends."""
    port = ports.free_port()
    fake = FakeDataproc(endpoint=f"http://127.0.0.1:{port}")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, name="fake-dataproc", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        ports.release([port])
