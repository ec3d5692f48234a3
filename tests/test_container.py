"""The Apptainer wiring: the definition file, the image as a config value, the build rule, and every job
running inside the image with `--use-singularity` and `--nv`.

Apptainer cannot be installed here, so a stub stands in for it: Snakemake 9 only asks `singularity --version`
(or `apptainer --version`) before planning container jobs, and runs each job as
`singularity exec --home <workdir> <apptainer args> <image> bash -c '<command>'`. The stub answers the first,
records the second and runs the command on the host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, job_stats

from normbench.config import ConfigError, load_schema, validate_config

REPO = Path(__file__).resolve().parents[1]
DEF = REPO / "containers" / "normbench.def"
REQUIREMENTS = REPO / "containers" / "requirements.txt"

STUB = """#!{python}
import json, os, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("apptainer version 1.3.4")
    sys.exit(0)
with open(os.environ["STUB_LOG"], "a") as fh:
    fh.write(json.dumps({{"name": os.path.basename(sys.argv[0]), "args": args, "cwd": os.getcwd()}}) + "\\n")
if args[:1] == ["exec"] and len(args) >= 4 and args[-2] == "-c":
    os.execvp(args[-3], [args[-3], "-c", args[-1]])  # run the job's command on the host
if args[:1] == ["build"]:
    open(args[-2], "wb").write(b"stub image")  # apptainer build ... <image> <definition>
    sys.exit(0)
sys.exit("stub: unsupported call " + " ".join(args))
"""


def parse_definition(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Header keywords and section bodies (``%name`` -> text) of an Apptainer definition file."""
    header, sections, current = {}, {}, None
    for line in text.splitlines():
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            current = m.group(1)
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
        elif line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    return header, sections


@pytest.fixture(scope="module")
def definition():
    return parse_definition(DEF.read_text())


def _copy_workflow(dest: Path) -> None:
    copy_workflow(dest, extra=("containers",))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")


def _stub_env(tmp_path: Path, names=("singularity",)) -> dict[str, str]:
    """Environment with the apptainer stub on PATH under ``names``; calls are logged to stub.jsonl."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        stub = bin_dir / name
        stub.write_text(STUB.format(python=sys.executable))
        stub.chmod(0o755)
    env = dict(
        os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", STUB_LOG=str(tmp_path / "stub.jsonl")
    )
    env.pop("APPTAINER_BUILD_ARGS", None)
    return env


def _stub_calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "stub.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _tiny(work: Path, **extra) -> Path:
    config = {
        "name": "tiny",
        "threads": 1,
        "experiments": {
            "gap": {
                "dataset": "digits",
                "image_size": 8,
                "models": ["plain20"],
                "seeds": [0],
                "epochs": 1,
                "batch_size": 256,
            }
        },
        **extra,
    }
    path = work / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- the definition file --------------------------------------------------------------------------------


def test_definition_header_pins_a_cuda_pytorch_base(definition):
    header, _ = definition
    assert header["Bootstrap"] == "docker"
    image = header["From"]
    m = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn\d+-(runtime|devel)", image)
    assert m, f"base image {image!r} is not a pinned pytorch/pytorch:<torch>-cuda<x.y>-cudnn<n>-<flavour> tag"
    pins = dict(
        line.split("==", 1) for line in REQUIREMENTS.read_text().splitlines() if line and line[0] != "#"
    )
    assert pins["torch"] == m.group(1), "requirements.txt must pin the base image's torch"


def test_definition_has_every_section(definition):
    _, sections = definition
    for name in ("arguments", "labels", "files", "environment", "post", "runscript", "test", "help"):
        assert sections.get(name, "").strip(), f"%{name} is missing or empty"


def test_labels_carry_version_and_git_sha(definition):
    _, sections = definition
    labels = dict(line.split(None, 1) for line in sections["labels"].splitlines() if line.strip())
    assert labels["org.opencontainers.image.version"] == "{{ VERSION }}"
    assert labels["org.opencontainers.image.revision"] == "{{ GIT_SHA }}"
    defaults = dict(line.strip().split("=", 1) for line in sections["arguments"].splitlines() if line.strip())
    assert set(defaults) == {"VERSION", "GIT_SHA"}
    import normbench

    assert normbench.__version__  # the build rule fills VERSION from it


def test_files_exist_and_post_installs_pinned_project(definition):
    _, sections = definition
    for line in sections["files"].splitlines():
        if line.strip():
            src, dest = line.split()
            assert (REPO / src).exists() or src == "README.md", f"%files source {src} does not exist"
            assert dest.startswith("/opt/normbench")
    post = sections["post"]
    assert "--requirement /opt/normbench/containers/requirements.txt" in post
    assert "--constraint /opt/normbench/containers/requirements.txt" in post
    assert "pip install --no-deps /opt/normbench" in post and "pip check" in post


def test_requirements_pin_every_dependency():
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9.+]*)", line.strip())
            assert m, f"requirements.txt: {line!r} is not pinned as name==version"
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", dep).group(0)).lower()
        assert name in pins, (
            f"dependency {dep!r} of pyproject.toml is not pinned in containers/requirements.txt"
        )


def test_test_section_imports_normbench_and_requires_a_gpu(definition):
    """Run the %test Python body here: it imports normbench and, with no GPU visible, fails saying so."""
    _, sections = definition
    body = re.search(r"<<'PY'\n(.*?)\nPY\n", sections["test"], re.S)
    assert body, "%test has no python heredoc"
    code = textwrap.dedent(body.group(1))
    compile(code, "%test", "exec")
    result = subprocess.run(
        [sys.executable, "-"], input=code, capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert "normbench" in result.stdout, result.stderr[-2000:]
    import torch

    if torch.cuda.is_available():
        assert result.returncode == 0, result.stderr[-2000:]
    else:
        assert result.returncode != 0 and "no GPU is visible" in result.stderr


# --- the image as a config value, the rules that use it, the rule that builds it ---------------------------


def test_container_is_a_config_value(tiny_config):
    assert load_schema()["properties"]["container"]["default"] == "containers/normbench.sif"
    assert validate_config(tiny_config)["container"] == "containers/normbench.sif"
    tiny_config["container"] = "oras://ghcr.io/example/normbench:0.1.0"
    assert validate_config(tiny_config)["container"] == "oras://ghcr.io/example/normbench:0.1.0"
    tiny_config["container"] = 3
    with pytest.raises(ConfigError, match="container: 3 is not of type 'string'"):
        validate_config(tiny_config)


def test_every_job_rule_declares_the_container():
    rules = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", smk.read_text(), re.M | re.S):
            rules[m.group(1)] = m.group(2)
    assert {"data", "train", "tables", "figures", "compare", "report", "container"} <= set(rules)
    for name, body in rules.items():
        if name == "container":
            assert "container:" not in body, "the image cannot be built inside itself"
            continue
        assert re.search(r"^    container:\n        CONTAINER$", body, re.M), (
            f"rule {name} declares no container"
        )


def test_build_rule_is_a_separate_target(tmp_path):
    _copy_workflow(tmp_path)
    env = _stub_env(tmp_path, names=("apptainer",))
    default = subprocess.run(
        ["snakemake", "-n", "--cores", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert default.returncode == 0, default.stderr[-3000:]
    assert "container" not in job_stats(default.stdout), "the default target must not need apptainer"
    build = subprocess.run(
        ["snakemake", "--cores", "1", "containers/normbench.sif"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (call,) = _stub_calls(tmp_path)
    import normbench

    assert call["name"] == "apptainer" and call["cwd"] == str(tmp_path)
    assert call["args"][:2] == ["build", "--force"] and "--nv" in call["args"]
    assert call["args"][-2:] == ["containers/normbench.sif", "containers/normbench.def"]
    args = call["args"]
    build_args = dict(b.split("=", 1) for a, b in zip(args, args[1:]) if a == "--build-arg")
    assert build_args == {"VERSION": normbench.__version__, "GIT_SHA": "unknown"}  # the copy is no git repo
    assert (tmp_path / "containers" / "normbench.sif").read_bytes() == b"stub image"


# --- Snakemake with --use-singularity ----------------------------------------------------------------------


def test_dry_run_with_use_singularity_plans_the_container_jobs(tmp_path):
    _copy_workflow(tmp_path)
    _tiny(tmp_path, container="docker://registry.example.org/normbench:0.1.0")
    env = _stub_env(tmp_path)
    cmd = ["snakemake", "-n", "--cores", "1", "--configfile", "tiny.yaml", "--use-singularity"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Singularity image docker://registry.example.org/normbench:0.1.0 will be pulled." in out
    planned = job_stats(out)
    assert planned["train"] == 1 and planned["report"] == 1 and "container" not in planned
    # Without any apptainer/singularity binary the same dry run stops: the jobs do need the container.
    bare = dict(env, PATH=os.pathsep.join(p for p in env["PATH"].split(os.pathsep)[1:]))
    if not (shutil.which("apptainer", path=bare["PATH"]) or shutil.which("singularity", path=bare["PATH"])):
        result = subprocess.run(cmd, cwd=tmp_path, env=bare, capture_output=True, text=True, timeout=300)
        assert result.returncode != 0
        assert "apptainer or singularity command has to be available" in result.stdout + result.stderr


def test_every_job_runs_inside_the_image_with_nv(tmp_path):
    """A real run through the stub with the workstation profile: each job is one `exec` of the image."""
    _copy_workflow(tmp_path)
    _tiny(tmp_path, container="images/normbench-test.sif")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "normbench-test.sif").write_bytes(b"stub image")
    env = _stub_env(tmp_path)
    result = subprocess.run(
        [
            "snakemake",
            "--profile",
            "workflow/profiles/local",
            "--configfile",
            "tiny.yaml",
            "--use-singularity",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    ran = job_stats(out)
    ran.pop("all")
    calls = [c["args"] for c in _stub_calls(tmp_path)]
    assert len(calls) == sum(ran.values()), (ran, calls)
    for args in calls:
        image = args.index("images/normbench-test.sif")
        assert args[0] == "exec" and "--nv" in args[1:image], args
        assert args[args.index("--home") + 1] == str(tmp_path)
    commands = [args[-1] for args in calls]
    for rule, word in [
        ("data", "normbench data"),
        ("train", "normbench train"),
        ("report", "normbench report"),
    ]:
        assert sum(word in c for c in commands) == ran[rule], (rule, commands)
    assert (tmp_path / "results" / "tiny" / "report.html").exists()
