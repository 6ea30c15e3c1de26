"""The ingestion service's configuration: the shipped sample, defaults, paths and one-line errors."""
from __future__ import annotations

import pathlib

import pytest

from riskcore_services.common.config import ConfigError
from riskcore_services.ingest.config import load_config, parse_config


def test_the_sample_replays_a_day_it_generates_into_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert (config.server.port, config.server.http_port) == (50053, 8083)
    assert config.service_name == "riskcore-ingest"
    assert config.source == "replay"
    assert config.replay.file == tmp_path / "riskcore-sample-day.itch"
    assert config.replay.generate is not None and config.replay.loop
    assert (config.risk_target, config.nats_servers) == ("", ())


def test_relative_paths_are_taken_from_the_files_folder(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "ingest.toml"
    path.write_text('[ingest]\nrisk_target = "127.0.0.1:50051"\nrisk_token_file = "t.txt"\n'
                    '[ingest.replay]\nfile = "days/d.itch.gz"\n[ingest.moldudp64]\nrecovery_file = "s.itch"\n'
                    '[server]\nport = 6000\n')
    config = load_config(path)
    assert config.replay.file == folder / "days" / "d.itch.gz"
    assert config.moldudp64.recovery_file == folder / "s.itch"
    assert config.risk_token_file == folder / "t.txt"
    assert (config.server.port, config.server.http_port) == (6000, 8083)


def test_a_generated_day_can_name_its_first_symbols():
    config = parse_config({"ingest": {"replay": {"file": "x", "generate": {"symbols": 3, "names": ["AAPL", "SPY"]}}}},
                          pathlib.Path("/"))
    assert config.replay.generate is not None
    assert config.replay.generate.simulation().names == ("AAPL", "SPY")


@pytest.mark.parametrize("nats, expected", [("", ()), ("nats://a:4222", ("nats://a:4222",)),
                                            (["nats://a:1", "tls://b:2"], ("nats://a:1", "tls://b:2"))])
def test_nats_servers_empty_one_or_a_list(nats, expected):
    config = parse_config({"ingest": {"replay": {"file": "x"}, "nats_servers": nats}}, pathlib.Path("/"))
    assert config.nats_servers == expected


@pytest.mark.parametrize("ingest, message", [
    ({"replay": {"file": "x", "speed": -1}}, "ingest.replay.speed: expected float >= 0.0, got -1"),
    ({"source": "kafka"}, "ingest.source: expected one of replay, moldudp64, got 'kafka'"),
    ({}, 'ingest.replay.file: required when ingest.source = "replay"'),
    ({"replay": {"file": "x"}, "risk_target": "nohost"}, "ingest.risk_target: expected str matching regex"),
    ({"replay": {"file": "x"}, "nats_servers": "redis://x"}, "ingest.nats_servers: expected a list of nats://"),
    ({"replay": {"file": "x"}, "nats_subject": "md.x"}, "ingest.nats_subject: expected str matching regex"),
    ({"replay": {"file": "x", "generate": {"messages": 3}}}, "ingest.replay.generate: messages must be at least"),
    ({"replay": {"file": "x", "generate": {"symbols": 1, "names": ["AAPL", "MSFT"]}}},
     "ingest.replay.generate: names: 2 tickers for 1 symbols"),
    ({"source": "moldudp64", "moldudp64": {"retry_after": 0}}, "ingest.moldudp64.retry_after: expected float > 0"),
    ({"source": "moldudp64", "moldudp64": {"soup": "h:70000"}}, "ingest.moldudp64: soup: port must be in"),
    ({"source": "moldudp64", "moldudp64": {"exchange_timezone": "Mars/Base"}}, "unknown time zone 'Mars/Base'"),
    ({"replay": {"file": "x"}, "typo": 1}, "ingest: unknown key 'typo'"),
])
def test_a_bad_value_is_one_line_naming_its_key(ingest, message):
    with pytest.raises(ConfigError) as caught:
        parse_config({"ingest": ingest}, pathlib.Path("/"))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
