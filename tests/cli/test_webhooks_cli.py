"""`submit --webhook` and `transcribe --webhook`: the CLI names a receiver, the server calls it."""

from __future__ import annotations

import json
from pathlib import Path

from standardwebhooks import Webhook
from support.cli import Cli
from support.net import receiver
from support.samples import SAMPLE_MP3, assert_sample
from support.servers import Server


def test_submit_and_transcribe_with_a_webhook(server: Server, tmp_path: Path) -> None:
    cli = Cli(tmp_path, server)
    with receiver() as rx:
        submitted = cli.run("submit", "-q", "--webhook", rx.url, str(SAMPLE_MP3))
        assert submitted.code == 0, submitted.err
        job_id = submitted.out.strip()
        # the same file again: not reused from the saved job, since it would call nobody
        done = cli.run("transcribe", "--webhook", rx.url + "?n=2", str(SAMPLE_MP3))
        assert done.code == 0, done.err
        assert_sample(done.out)
        assert rx.wait(2, 60)
        # (a subprocess server has no connect tripwire: refuse on a scheme, which sends
        # nothing even if the guard were wrong; addresses are refused in test_webhooks_server)
        refused = cli.run("submit", "--webhook", "ftp://127.0.0.1/hook", str(SAMPLE_MP3))
    assert refused.code == 1, refused.err  # the server refused it (400), as for any bad input
    assert "webhook URL is refused" in refused.err and "Traceback" not in refused.err
    printed = cli.run("server", "webhook-secret", WHISPERCLI_CONFIG_DIR=str(server.config_dir))
    secret = Webhook(printed.out.strip())  # the server's secret, in its config dir
    bodies = [secret.verify(r.body, r.headers) for r in rx.received]
    assert job_id in {b["id"] for b in bodies}
    assert len({b["id"] for b in bodies}) == 2
    assert {r.path for r in rx.received} == {"/hook", "/hook?n=2"}
    assert json.loads(rx.received[0].body)["status"] == "success"
