"""After every process of the substrate is SIGKILLed (a machine right after a session ends), bringing it up
again finds it healthy: earlier Deployments run again, the frontend's pods (whose FUSE mounts died with the node)
serve again, and the bucket still holds its objects."""

from __future__ import annotations

import hashlib
import os
import signal
import time
import uuid

import requests
from conftest import (GCS_ENDPOINT, REPO, apply, echo_workload, ensure_bucket, lb_address, ready_pods, recap,
                      redeploy, run_playbook, upload, wait_for)
from substrate_state import footprint, processes


def test_bring_up_after_sigkill_of_every_process(kube, echo_image, gcs_session):
    from kubernetes import client, config

    image, nonce = echo_image
    namespace = "recovery-" + uuid.uuid4().hex[:6]
    client.CoreV1Api(kube).create_namespace({"metadata": {"name": namespace}})
    apply(kube, namespace, echo_workload(image))
    wait_for(lambda: ready_pods(kube, namespace, "app=echo"), 90, what="the echo pod before the crash")
    bucket = "recovery-" + uuid.uuid4().hex[:6]
    ensure_bucket(gcs_session, bucket)
    payload = os.urandom(4096)
    upload(gcs_session, bucket, "kept.bin", payload)
    # The frontend in its default layout (gcsfuse sidecars mounting into emptyDirs), onto the substrate as it is.
    redeploy()

    victims = processes()
    assert len(victims) > 10, victims
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not (processes() & victims), 20, interval=0.2, what="the killed processes to be gone")
    left = footprint()
    assert left["netns"] and left["mounts"] and left["iptables"], "the crash should leave state behind: %s" % left

    t0 = time.monotonic()
    proc = run_playbook("playbooks/local_cluster.yml")
    print("timing: bring-up after SIGKILL took %.1fs" % (time.monotonic() - t0))
    assert recap(proc.stdout)["failed"] == 0

    api = config.new_client_from_config(context="gcsfront-local")
    pods = wait_for(lambda: ready_pods(api, namespace, "app=echo"), 180, what="the echo pod after the crash")
    address = lb_address(api, namespace, "echo")
    body = wait_for(lambda: requests.get("http://%s/" % address, timeout=3).json(), 60,
                    what="the echo Service to answer after the crash")
    assert body["nonce"] == nonce and body["pod"] in [p.metadata.name for p in pods]

    frontend_pods = "app.kubernetes.io/name=gcsfront"
    replicas = len(client.CoreV1Api(api).list_namespaced_pod("gcsfront", label_selector=frontend_pods).items)
    assert replicas > 0
    wait_for(lambda: len(ready_pods(api, "gcsfront", frontend_pods)) == replicas, 180,
             what="the frontend's pods after the crash")
    frontend = lb_address(api, "gcsfront", "gcsfront")
    index = wait_for(lambda: requests.get("http://%s/index.html" % frontend, timeout=3), 60,
                     what="the frontend to answer after the crash")
    assert index.status_code == 200 and index.content == (REPO / "playbooks/files/seed/index.html").read_bytes()

    # gcs_session's cached token was minted before the crash: stateless tokens outlive the gateway.
    r = gcs_session.get(GCS_ENDPOINT + "/storage/v1/b/%s/o/kept.bin" % bucket, params={"alt": "media"}, timeout=10)
    assert r.status_code == 200, r.text
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(payload).hexdigest()
    client.CoreV1Api(api).delete_namespace(namespace)
