import pytest
import yaml

from normbench.config import ConfigError, RunSpec, load_config, run_config, run_specs, validate_config


def test_default_config_is_valid(repo):
    config = load_config(repo / "config" / "config.yaml")
    assert config["name"] == "smoke"
    assert len(run_specs(config)) == 4  # 2 models x 1 method x 2 seeds


def test_defaults_are_filled(tiny_config):
    config = validate_config(tiny_config)
    exp = config["experiments"]["gap"]
    assert exp["methods"] == ["none"]
    assert exp["schedule"]["name"] == "constant"
    assert exp["optimizer"]["momentum"] == 0.9 and exp["optimizer"]["lr"] == 0.05
    assert config["data"] == {"root": "data", "download": False, "workers": 8}


def test_unknown_key_is_named(tiny_config):
    tiny_config["experiments"]["gap"]["epoks"] = 3
    with pytest.raises(ConfigError, match="epoks"):
        validate_config(tiny_config)


def test_wrong_type_names_the_key_path(tiny_config):
    tiny_config["experiments"]["gap"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"experiments\.gap\.epochs: 'ten' is not of type 'integer'"):
        validate_config(tiny_config)


def test_unknown_model_lists_valid_ones(tiny_config):
    tiny_config["experiments"]["gap"]["models"] = ["resnet9000"]
    with pytest.raises(ConfigError) as err:
        validate_config(tiny_config)
    assert "resnet9000" in str(err.value) and "preact_resnet164" in str(err.value)


def test_unknown_method_lists_valid_ones(tiny_config):
    tiny_config["experiments"]["gap"]["methods"] = ["magic"]
    with pytest.raises(ConfigError, match="magic.*valid methods are: .*none"):
        validate_config(tiny_config)


def test_load_config_names_the_file(tmp_path, tiny_config):
    tiny_config["bogus"] = 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    with pytest.raises(ConfigError, match=r"(?s)c\.yaml.*bogus"):
        load_config(path)


def test_run_config_is_self_contained(tiny_config):
    config = validate_config(tiny_config)
    spec = RunSpec("gap", "plain20", "none", 1)
    cfg = run_config(config, spec)
    assert cfg["seed"] == 1 and cfg["model"] == "plain20" and cfg["dataset"] == "digits"
    assert cfg["reproduces"] == ["zaeemzadeh2020/table1"]
    assert spec.path == "gap/plain20/none/seed1"
    with pytest.raises(ConfigError, match="seeds"):
        run_config(config, RunSpec("gap", "plain20", "none", 7))
