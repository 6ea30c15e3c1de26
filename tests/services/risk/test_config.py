"""The TOML configuration: the shipped sample loads; unknown keys and bad values are refused by name."""
import importlib.resources
import pathlib
import tomllib

import pytest

from riskcore import Instrument, Limits, TradingState
from riskcore_services.risk.config import ConfigError, build_engine, load_config, parse_config

SAMPLE = importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()


def sample() -> dict:
    return tomllib.loads(SAMPLE)


def refused(data: dict, base: pathlib.Path = pathlib.Path(".")) -> str:
    """The ConfigError message for ``data``, whether parsing or building the engine refuses it."""
    with pytest.raises(ConfigError) as error:
        build_engine(parse_config(data, base))
    return str(error.value)


# ------------------------------------------------------------------ the sample

def test_sample_loads_with_the_documented_defaults():
    config = load_config(None)

    assert (config.server.host, config.server.port) == ("127.0.0.1", 50051)
    assert (config.server.http_host, config.server.http_port) == ("127.0.0.1", 8080)
    assert config.server.grace_seconds == 10.0
    assert (config.firm, config.default_account, config.duplicate_window) == ("FIRM", "default", 0.0)
    assert config.order_capacity == 100_000
    assert config.tls is None and config.tokens == () and config.tracing_endpoint is None
    assert config.profiling is False
    assert [i.symbol for i in config.instruments] == ["AAPL", "MSFT", "SPY", "ESZ6", "EURUSD"]
    assert [a.name for a in config.accounts] == ["FIRM", "equities", "default", "momentum", "futures", "trend"]


def test_sample_builds_an_engine_with_its_accounts_limits_and_instruments():
    engine = build_engine(load_config(None))

    assert engine.accounts == ["FIRM", "equities", "default", "momentum", "futures", "trend"]
    assert engine.parent("default") == "equities" and engine.parent("trend") == "futures"
    assert engine.limits("default") == Limits(max_order_quantity=100_000, max_order_notional=5_000_000.0,
                                              max_open_orders=1_000, new_order_rate=(5_000, 1.0))
    assert engine.limits("FIRM").max_gross_notional == 500_000_000.0
    assert engine.position_limit("momentum", "AAPL") == (50_000, 50_000)
    assert engine.instrument("ESZ6").multiplier == 50.0
    assert engine.reference_price("AAPL") == 190.0
    assert engine.trading_state(account="default") == TradingState.ACTIVE


def test_sample_journal_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "riskcore.toml"
    path.write_text(SAMPLE)

    assert load_config(path).state.path == tmp_path / "riskcore-risk.db"


def test_config_without_optional_tables_uses_defaults():
    data = {"instruments": [{"symbol": "X", "tick_size": 0.5}], "accounts": [{"name": "default"}]}

    config = parse_config(data, pathlib.Path("."))

    assert (config.server.port, config.firm, config.default_account) == (50051, "FIRM", "default")
    assert build_engine(config).parent("default") == "FIRM"


# ------------------------------------------------------------------ unknown keys

UNKNOWN_KEYS = [
    (lambda d: d.update(bogus=1), "config", "bogus"),
    (lambda d: d["server"].update(prot=50052), "server", "prot"),
    (lambda d: d["engine"].update(firmname="X"), "engine", "firmname"),
    (lambda d: d["state"].update(pathh="x.db"), "state", "pathh"),
    (lambda d: d["logging"].update(reqs=True), "logging", "reqs"),
    (lambda d: d.update(tracing={"endpoit": "127.0.0.1:4317"}), "tracing", "endpoit"),
    (lambda d: d.update(profiling={"enable": True}), "profiling", "enable"),
    (lambda d: d.update(tls={"cert": "a", "key": "b", "ca": "c"}), "tls", "ca"),
    (lambda d: d.update(auth={"token": []}), "auth", "token"),
    (lambda d: d.update(auth={"tokens": [{"name": "x", "sha256": "0" * 64, "role": "admin", "salt": 1}]}),
     "auth.tokens[0]", "salt"),
    (lambda d: d["instruments"][0].update(tick=0.01), "instruments[0]", "tick"),
    (lambda d: d["accounts"][2].update(colour="red"), "accounts[2]", "colour"),
    (lambda d: d["accounts"][2]["limits"].update(max_order_qty=5), "accounts[2].limits", "max_order_qty"),
    (lambda d: d["accounts"][3]["position_limits"][0].update(max_lng=5), "accounts[3].position_limits[0]",
     "max_lng"),
]


@pytest.mark.parametrize("mutate, where, key", UNKNOWN_KEYS, ids=[f"{w}.{k}" for _, w, k in UNKNOWN_KEYS])
def test_unknown_key_is_refused_naming_the_table_and_the_key(mutate, where, key):
    data = sample()
    mutate(data)

    message = refused(data)

    assert message.startswith(f"{where}:"), message
    assert key in message


# ------------------------------------------------------------------ bad values

BAD_VALUES = [
    (lambda d: d["server"].update(port=70000), "server.port"),  # out of range
    (lambda d: d["server"].update(http_port=-1), "server.http_port"),
    (lambda d: d["server"].update(port="50051"), "server.port"),
    (lambda d: d["server"].update(grace_seconds=-1.0), "grace_seconds"),
    (lambda d: d["engine"].update(default_account="nobody"), "default_account"),
    (lambda d: d["engine"].update(duplicate_window=-1.0), "duplicate_window"),
    (lambda d: d["engine"].update(order_capacity=-1), "order_capacity"),
    (lambda d: d["engine"].update(order_capacity=1.5), "order_capacity"),
    (lambda d: d["state"].update(snapshot_every=0), "snapshot_every"),
    (lambda d: d["state"].update(roll_time="25:00"), "roll_time"),
    (lambda d: d["state"].update(roll_timezone="Mars/Olympus"), "roll_timezone"),
    (lambda d: d["state"].update(backend="postgres"), "backend"),
    (lambda d: d["logging"].update(level="loud"), "level"),
    (lambda d: d["logging"].update(requests=True), "logging.requests"),
    (lambda d: d["instruments"][0].update(tick_size=0.0), "tick_size"),
    (lambda d: d["instruments"][1].update(tick_size=-0.01), "instruments[1]"),
    (lambda d: d["instruments"][0].update(reference_price=float("nan")), "reference_price"),
    (lambda d: d["instruments"].append({"symbol": "AAPL", "tick_size": 0.05, "reference_price": 10.0}), "AAPL"),
    (lambda d: d["accounts"][2].update(state="PAUSED"), "accounts[2].state"),
    (lambda d: d["accounts"][2].update(parent="nobody"), "nobody"),
    (lambda d: d["accounts"][2].pop("name"), "name"),
    (lambda d: d["accounts"].append({"name": "default", "parent": "equities"}), "default"),
    (lambda d: d["accounts"][2]["limits"].update(max_order_quantity=-5), "max_order_quantity"),
    (lambda d: d["accounts"][2]["limits"].update(max_gross_notional="lots"), "max_gross_notional"),
    (lambda d: d["accounts"][2]["limits"].update(new_order_rate=[5]), "new_order_rate"),
    (lambda d: d["accounts"][2]["limits"].update(new_order_rate=[5, 0.0]), "new_order_rate"),
    (lambda d: d["accounts"][3]["position_limits"][0].update(symbol="NOPE"), "NOPE"),
    (lambda d: d["accounts"][3].update(allowed_symbols=["NOPE"]), "NOPE"),
    (lambda d: d.update(auth={"tokens": [{"name": "x", "sha256": "0" * 64, "role": "root"}]}), "role"),
]


def _value_id(case) -> str:
    mutate, name = case
    return f"{name}-{BAD_VALUES.index(case)}"


@pytest.mark.parametrize("mutate, name", BAD_VALUES, ids=[_value_id(c) for c in BAD_VALUES])
def test_bad_value_is_refused_with_a_config_error_naming_it(mutate, name):
    data = sample()
    mutate(data)

    assert name in refused(data)


def test_unreadable_file_is_a_config_error_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*missing.toml"):
        load_config(tmp_path / "missing.toml")


def test_toml_syntax_error_is_a_config_error_naming_the_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[server]\nport = \n")

    with pytest.raises(ConfigError, match=r"broken\.toml.*line 2"):
        load_config(path)


# ------------------------------------------------------------------ the schema names the key path

TYPED = [
    (lambda d: d["accounts"][2]["limits"].update(new_order_rate=[5, "x"]),
     "accounts[2].limits.new_order_rate[1]: expected float, got 'x'"),
    (lambda d: d["accounts"][2]["limits"].update(new_order_rate=[5]),
     "accounts[2].limits.new_order_rate: expected a list of length 2, got [5]"),
    (lambda d: d["server"].update(max_message_bytes=-1), "server.max_message_bytes: expected int >= 1024, got -1"),
    (lambda d: d["state"].update(nats_servers="nats://x"), "state.nats_servers: expected a list, got 'nats://x'"),
    (lambda d: d["state"].update(nats_servers=["x"]),
     "state.nats_servers[0]: expected str matching regex '^(nats|tls)://', got 'x'"),
    (lambda d: d["state"].update(path=5), "state.path: expected str, got 5"),
    (lambda d: d["state"].update(lease_seconds=0), "state.lease_seconds: expected float >= 0.1, got 0"),
    (lambda d: d["state"].update(name="risk-1"),
     "state.name: expected str matching regex '^[A-Za-z_][A-Za-z0-9_]*$', got 'risk-1'"),
    (lambda d: d["server"].update(grace_seconds=float("nan")), "server.grace_seconds: expected float >= 0.0, got nan"),
    (lambda d: d["engine"].update(duplicate_window=True), "engine.duplicate_window: expected float, got True"),
    (lambda d: d["instruments"][0].update(lot_size=1.0), "instruments[0].lot_size: expected int, got 1.0"),
    (lambda d: d["instruments"][0].update(tradable="yes"), "instruments[0].tradable: expected bool, got 'yes'"),
    (lambda d: d["accounts"][3].update(allowed_symbols="AAPL"), "accounts[3].allowed_symbols: expected a list, got 'AAPL'"),
    (lambda d: d["accounts"][3]["position_limits"][0].update(max_long=-5),
     "accounts[3].position_limits[0].max_long: expected int >= 0, got -5"),
    (lambda d: d["accounts"].append(7), "accounts[6]: expected a table, got 7"),
    (lambda d: d.update(server=[1]), "server: expected a table, got [1]"),
    (lambda d: d["state"].update(backend="pg"), "state.backend: expected one of sqlite, jetstream, got 'pg'"),
    (lambda d: d["state"].update(roll_timezone="Mars/Olympus"),
     "state: unknown time zone 'Mars/Olympus' in roll_timezone"),
    (lambda d: d["instruments"][1].update(tick_size=-0.01), "instruments[1]: tick_size must be finite and > 0, got -0.01"),
]


@pytest.mark.parametrize("mutate, line", TYPED, ids=[line.split(":")[0] for _, line in TYPED])
def test_a_value_of_the_wrong_type_or_range_is_one_config_error_line_naming_its_key_path(mutate, line):
    data = sample()
    mutate(data)

    assert refused(data) == line


def test_the_schema_follows_the_kernels_instrument_and_limits_fields():
    from dataclasses import fields

    from riskcore_services.risk.config import InstrumentTable, LimitsTable

    assert InstrumentTable.__struct_fields__ == tuple(f.name for f in fields(Instrument))
    assert LimitsTable.__struct_fields__ == tuple(f.name for f in fields(Limits))


def test_alert_rules_come_from_the_monitors_file_only_those_about_risk_events(tmp_path):
    monitor = importlib.resources.files("riskcore_services.monitor").joinpath("sample.toml").read_text()
    (tmp_path / "monitor.toml").write_text(monitor)
    config = parse_config({**sample(), "alerts": {"rules_file": "monitor.toml"}}, tmp_path)
    every_rule = tomllib.loads(monitor)["monitor"]["rules"]
    about_risk = [r["name"] for r in every_rule if r["kind"] in ("breach", "trading_state", "utilisation",
                                                                  "rejection_rate")]
    assert [rule.name for rule in config.alert_rules] == about_risk
    assert 0 < len(about_risk) < len(every_rule)
    assert parse_config(sample(), tmp_path).alert_rules == ()


@pytest.mark.parametrize("text, message", [
    (None, r"alerts\.rules_file: cannot read .*monitor\.toml"),
    ('[monitor]\nrules = [{ name = "x" }]', r"alerts\.rules_file: monitor\.rules\[0\]"),
    ('[[monitor.rules]]\nname = "Feed"\nkind = "feed_gap"\nsummary = "gap"',
     r"alerts\.rules_file: .*monitor\.toml' has no rule about the kinds breach, trading_state"),
])
def test_an_alert_rules_file_that_cannot_serve_is_a_config_error_naming_the_key(tmp_path, text, message):
    if text is not None:
        (tmp_path / "monitor.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse_config({**sample(), "alerts": {"rules_file": "monitor.toml"}}, tmp_path)
