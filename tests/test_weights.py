"""The weights registry: round trip, fp16, and a clear error for every mismatch."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from xad import weights
from xad.weights import WeightsError, load_model, list_models, read_record, save_model


@weights.register
class TinyNet(torch.nn.Module):
    @dataclass(frozen=True)
    class Config:
        channels: tuple[int, ...] = (4, 8)
        image_size: int = 16

    def __init__(self, config: "TinyNet.Config") -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.conv = torch.nn.Conv2d(3, c[0], 3)
        self.bn = torch.nn.BatchNorm2d(c[0])
        self.head = torch.nn.Linear(c[0], c[1])


def _saved(tmp_path: Path, dtype: torch.dtype = torch.float32) -> tuple[TinyNet, Path]:
    torch.manual_seed(0)
    model = TinyNet(TinyNet.Config(channels=(4, 6)))
    folder = save_model(model, tmp_path / "tiny" / "m1", family="tiny", preset="cpu",
                        card="# Tiny\ncommand: none", metrics={"auroc": 0.5},
                        meta={"seed": 3}, dtype=dtype)
    return model, folder


def test_round_trip(tmp_path: Path) -> None:
    model, folder = _saved(tmp_path)
    loaded, record = load_model(folder)
    assert record.cls == "TinyNet" and record.preset == "cpu" and record.meta["seed"] == 3
    assert loaded.config == model.config and not loaded.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    records, problems = list_models([tmp_path])
    assert [r.name for r in records] == ["tiny/m1"] and problems == []
    assert records[0].metrics == {"auroc": 0.5} and "command" in records[0].card


def test_fp16_storage_loads_as_fp32(tmp_path: Path) -> None:
    model, folder = _saved(tmp_path, torch.float16)
    loaded, _ = load_model(folder)
    w = loaded.conv.weight
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, model.conv.weight, atol=1e-3, rtol=1e-3)
    assert loaded.bn.num_batches_tracked.dtype == torch.int64


def test_config_mismatch_is_named(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["config"]["depth"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"config does not fit TinyNet \(unknown fields: \['depth'\]"):
        load_model(folder)


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["config"]["channels"] = [4, 9]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"do not match the config's architecture \(wrong shape: head"):
        load_model(folder)


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no config.json"):
        read_record(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="config.json: not valid JSON"):
        read_record(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"class": "Nope", "config": {}}))
    with pytest.raises(WeightsError, match="unknown architecture 'Nope'"):
        load_model(tmp_path)
    _, folder = _saved(tmp_path / "b")
    (folder / "model.safetensors").write_bytes(b"\x80\x04 a pickle is never read")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(folder)
    with pytest.raises(WeightsError, match="holds a TinyNet, but a VAEGAN is needed"):
        load_model(_saved(tmp_path / "c")[1], expect="VAEGAN")


def test_list_reports_broken_folders(tmp_path: Path) -> None:
    _saved(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("[]")
    records, problems = list_models([tmp_path])
    assert len(records) == 1 and len(problems) == 1 and "broken" in problems[0]
