"""The edml command: clear errors, non-zero exits."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edml.cli import main
from edml.local.processes import free_port


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("demo", "stack", "topics", "train", "publish",
                                        "models", "serve"))


def _edml(*args: str, env: dict[str, str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edml.cli", *args],
                          env={"PATH": "/usr/bin:/bin", **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", [["topics"], ["models", "list"],
                                     ["models", "history", "trip-duration"],
                                     ["serve", "--web-port", "0"]])
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(command: list[str]) -> None:
    env = {"EDML_TOPIC_PARTITIONS": "0"} if command[0] != "serve" else {}
    result = _edml(*command, env=env)
    assert result.returncode == 2
    expected = ("ConfigError: EDML_SCORING_WEB_PORT=0: Input should be greater than or equal "
                "to 1" if command[0] == "serve" else
                "ConfigError: EDML_TOPIC_PARTITIONS='0': Input should be greater than or equal "
                "to 1")
    assert result.stderr.splitlines() == [expected]


def test_a_setting_outside_its_choices_names_them() -> None:
    result = _edml("models", "list", env={"EDML_KAFKA_SECURITY_PROTOCOL": "TLS"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "ConfigError: EDML_KAFKA_SECURITY_PROTOCOL='TLS': Input should be 'PLAINTEXT', "
        "'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'"]


@pytest.mark.parametrize("command", [["topics"], ["models", "list"], ["serve"]])
def test_an_unreachable_broker_is_one_line_naming_the_address(command: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {"EDML_KAFKA_BOOTSTRAP": address, "EDML_KAFKA_REQUEST_TIMEOUT_S": "2"}
    started = time.monotonic()
    result = _edml(*command, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"BrokerError: cannot reach the Kafka broker at {address} (EDML_KAFKA_BOOTSTRAP) "
        "within 2 s: Failed to get metadata: Local: Broker transport failure"], result.stderr
    assert time.monotonic() - started < 30  # a bound on hanging (the command has 2 s)


@pytest.mark.tf
def test_publishing_to_an_unreachable_broker_is_one_line_and_uploads_nothing(
    quick_model: Path, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {"EDML_KAFKA_BOOTSTRAP": address, "EDML_KAFKA_REQUEST_TIMEOUT_S": "2",
           "EDML_STORAGE_URI": f"file://{tmp_path}/models"}
    result = _edml("publish", str(quick_model), "--name", "trip-duration", env=env, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"BrokerError: cannot reach the Kafka broker at {address} (EDML_KAFKA_BOOTSTRAP) "
        "within 2 s: Failed to get metadata: Local: Broker transport failure"], result.stderr
    assert not (tmp_path / "models").exists()


def test_tensorflows_native_chatter_is_dropped_and_real_native_errors_still_show() -> None:
    script = (
        "import os; from edml.quiet import quiet_tensorflow; quiet_tensorflow(); "
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n'); "
        "os.write(2, b'I0000 00:00:1795613454.026328    2012 port.cc:153] oneDNN custom "
        "operations are on.\\n'); "
        "os.write(2, b'E0000 00:00:1795613.1 2012 meta_optimizer.cc:967] NodeDef mentions "
        "attribute use_unbounded_threadpool which is not in the op definition\\n'); "
        "os.write(2, b'E0000 00:00:1795613.2 2012 real.cc:1] a real native error\\n'); "
        "import sys; print('python says hello', file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        "E0000 00:00:1795613.2 2012 real.cc:1] a real native error", "python says hello"]


@pytest.mark.tf
def test_training_shows_no_tensorflow_chatter(tmp_path: Path) -> None:
    result = _edml("train", "--quick", "--quick-rows", "300", "--out", str(tmp_path),
                   timeout=300)
    assert result.returncode == 0, result.stderr
    assert "oneDNN" not in result.stderr and "absl" not in result.stderr
    assert "use_unbounded_threadpool" not in result.stderr
    assert "trained on 300 trips" in result.stderr
