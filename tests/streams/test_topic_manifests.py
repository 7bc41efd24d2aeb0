"""The deployment manifests create every topic the worker reads or writes, with the partition
counts it expects: workers there run with ``--no-create-topics`` and broker auto-creation off,
so a topic missing from a manifest stops the first send to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.settings import load_settings
from streams.topics import app_topic_specs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CREATE = re.compile(r"--create --topic (\S+) --partitions (\d+)")


@pytest.mark.parametrize("manifest", ["k8s/topics-job.yaml", "docker-compose.yml"])
def test_every_topic_the_worker_uses_is_in_the_manifest(manifest: str) -> None:
    created = {name: int(n) for name, n in CREATE.findall((DEPLOY / manifest).read_text())}
    # the manifests' settings (k8s/configmap.yaml, the compose file's environment)
    settings = load_settings(
        topic_prefix="surv", app_id="surveillance", partitions=12, window_partitions=12
    )
    expected = {spec.name: spec.partitions for spec in app_topic_specs(settings)}
    assert created == expected
