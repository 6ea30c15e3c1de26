"""Choosing grpcio's I/O paths: only possible before grpc is imported (the CLI's first step)."""
import os

import grpc  # noqa: F401 - imported, as in any process past start-up
import pytest

from riskcore_services.common.grpc_io import prefer_legacy_io


def test_prefer_legacy_io_after_grpc_is_imported_raises_instead_of_silently_doing_nothing(monkeypatch):
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)

    with pytest.raises(RuntimeError, match="before grpc is imported"):
        prefer_legacy_io()
    assert "GRPC_EXPERIMENTS" not in os.environ


def test_prefer_legacy_io_leaves_a_choice_already_in_the_environment(monkeypatch):
    monkeypatch.setenv("GRPC_EXPERIMENTS", "")

    prefer_legacy_io()

    assert os.environ["GRPC_EXPERIMENTS"] == ""
