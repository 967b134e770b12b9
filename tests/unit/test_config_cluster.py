"""udpt.config's [cluster] table: several nodes through NATS JetStream, or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from udpt import config as config_module
from udpt.cli import run
from udpt.config import ClusterConfig, ConfigError, load_config


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, cluster: str) -> ClusterConfig | None:
    path = tmp_path / "udpt.toml"
    path.write_text(cluster, encoding="utf-8")
    return load_config(path).cluster


def test_without_the_table_there_is_no_cluster(tmp_path: Path) -> None:
    assert load(tmp_path, "") is None
    assert load_config(None).cluster is None


def test_table_with_one_url_and_defaults(tmp_path: Path) -> None:
    cluster = load(tmp_path, '[cluster]\nnats_url = "nats://10.0.0.5:4222"\nnode_id = "a"\n')

    assert cluster == ClusterConfig(("nats://10.0.0.5:4222",), "a", "udpt", 1)


def test_table_with_several_urls(tmp_path: Path) -> None:
    cluster = load(
        tmp_path,
        '[cluster]\nnats_url = ["nats://n1:4222", "nats://n2:4222"]\nnode_id = "b-2"\n'
        'stream = "tracker_eu"\nreplicas = 3\n',
    )

    assert cluster == ClusterConfig(("nats://n1:4222", "nats://n2:4222"), "b-2", "tracker_eu", 3)


def test_cluster_config_prints_and_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "udpt.toml"
    path.write_text('[cluster]\nnats_url = ["nats://n1:4222", "nats://n2:1"]\nnode_id = "x"\n')
    config = load_config(path)
    printed = tmp_path / "printed.toml"
    printed.write_text(config.to_toml())

    assert load_config(printed) == config


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ("[cluster]\n", "cluster.node_id", "required"),
        ('[cluster]\nnode_id = "a.b"\n', "cluster.node_id", "a node id: 1 to 64 of"),
        ('[cluster]\nnode_id = "a"\nnats_url = []\n', "cluster.nats_url", "non-empty array"),
        ('[cluster]\nnode_id = "a"\nnats_url = "http://x"\n', "cluster.nats_url", "not a NATS"),
        ('[cluster]\nnode_id = "a"\nnats_url = [1]\n', "cluster.nats_url", "non-empty string"),
        ('[cluster]\nnode_id = "a"\nstream = "u*"\n', "cluster.stream", "a stream prefix"),
        ('[cluster]\nnode_id = "a"\nreplicas = 0\n', "cluster.replicas", "between 1 and 5"),
        ('cluster = "yes"\n', "cluster", "expected a table"),
    ],
)
def test_bad_cluster_value_is_one_line_naming_file_key_and_problem(
    tmp_path: Path, table: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, table)

    assert raised.value.key == key
    assert problem in raised.value.problem
    assert "\n" not in str(raised.value)


def test_cluster_without_nats_py_is_one_line_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_module, "find_spec", lambda name: None)

    with pytest.raises(ConfigError) as raised:
        load(tmp_path, '[cluster]\nnode_id = "a"\n')

    assert raised.value.key == "cluster"
    assert "pip install 'udpt[cluster]'" in str(raised.value)


def test_cli_exits_2_when_nats_py_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(config_module, "find_spec", lambda name: None)
    path = tmp_path / "udpt.toml"
    path.write_text('[cluster]\nnode_id = "a"\n')

    assert run(["-c", str(path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "cluster" in line and "nats-py" in line
