"""The package's wings and the arrows between them (issue 18): every import of every module, read from its
source, must follow the table below; verdicts, outputs and runs import no torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "normbench"

WINGS = (
    "config",
    "models",
    "methods",
    "probes",
    "training",
    "runs",
    "studies",
    "references",
    "verdicts",
    "outputs",
    "cli",
)

ALLOWED = {
    "models": set(),
    "methods": {"models"},
    "runs": set(),
    "probes": {"models", "runs"},
    "config": {"models", "methods", "probes", "training", "runs"},  # validation asks the registries
    "training": {"models", "methods", "probes", "runs", "config"},
    "studies": {"training", "models", "methods", "probes", "runs", "config"},
    "references": {"verdicts.metrics"},  # a reference's metric is checked against the one metric table
    "verdicts": {"runs", "references", "config"},
    "outputs": {"runs", "verdicts", "references", "config"},
    "cli": set(WINGS),
}
"""What each wing may import at module level (a dotted entry allows that one module only)."""

LAZY = {
    ("verdicts.numbers", "methods"): "a method's option defaults, so runs with defaults match a reference",
    ("verdicts.numbers", "models"): "structure rows: the registry's parameter count of a model",
    ("verdicts.numbers", "probes.gradients"): "structure rows: the blocks of a registry model (find_blocks)",
    ("verdicts.protocol", "training.engine"): "the bf16 validation of a run that used bf16",
    ("outputs.figures", "models"): "the registry's depth of a model a figure draws by depth",
}
"""The only imports allowed inside a function and not at module level, each with its reason."""

NO_TORCH = ("runs", "verdicts", "outputs", "references")


def _module(path: Path) -> str:
    parts = path.relative_to(PKG).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _wing(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported normbench module without the prefix, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body} | {
        id(n) for stmt in tree.body if isinstance(stmt, ast.If | ast.Try) for n in ast.walk(stmt)
    }
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("normbench"):
            names = (
                [node.module] if node.module != "normbench" else [f"normbench.{a.name}" for a in node.names]
            )
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("normbench")]
        out += [(n.removeprefix("normbench").lstrip("."), id(node) in top) for n in names if n != "normbench"]
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_a_wing():
    stray = [_module(p) for p in _modules() if _module(p) and _wing(_module(p)) not in WINGS]
    assert not stray, f"modules outside the wings: {stray}"


def _allowed(src: str, target: str) -> bool:
    wing = _wing(src)
    if _wing(target) == wing:
        return True
    return any(
        target == a or target.startswith(a + ".") or (("." not in a) and _wing(target) == a)
        for a in ALLOWED[wing]
    )


def test_imports_follow_the_arrows():
    bad = []
    for path in _modules():
        src = _module(path)
        if not src:
            continue
        for target, at_top in _imports(path):
            if _allowed(src, target):
                continue
            lazy = next(
                (
                    r
                    for (m, t), r in LAZY.items()
                    if src == m and (target == t or target.startswith(t + ".")) and not at_top
                ),
                None,
            )
            if lazy is None:
                bad.append(f"{src} -> {target}{'' if at_top else ' (inside a function)'}")
    assert not bad, "imports against the arrows:\n" + "\n".join(bad)


def test_lazy_exceptions_are_all_used():
    """A listed exception nobody needs any more is removed from the table, so it cannot hide a new one."""
    used = set()
    for path in _modules():
        src = _module(path)
        for target, at_top in _imports(path):
            for m, t in LAZY:
                if src == m and (target == t or target.startswith(t + ".")) and not at_top:
                    used.add((m, t))
    assert used == set(LAZY), f"unused exceptions: {set(LAZY) - used}"


def test_the_checker_catches_a_wrong_arrow(tmp_path):
    """The rule is not vacuous: a verdicts module importing the trainer at module level is refused."""
    assert not _allowed("verdicts.numbers", "training.trainer")
    assert not _allowed("runs.folder", "probes")
    assert not _allowed("outputs.report", "training.data")
    assert _allowed("outputs.report", "verdicts.claims") and _allowed("training.trainer", "runs.records")
    f = tmp_path / "m.py"
    f.write_text(
        "import os\nfrom normbench.training import trainer\ndef f():\n    from normbench.models import X\n"
    )
    assert _imports(f) == [("training", True), ("models", False)] or sorted(_imports(f)) == sorted(
        [("training.trainer", True), ("models", False)]
    )


@pytest.mark.parametrize("wing", NO_TORCH)
def test_wing_imports_no_torch(wing):
    mods = [_module(p) for p in _modules() if _wing(_module(p)) == wing]
    code = (
        "import sys\n"
        + "".join(f"import normbench.{m}\n" for m in mods)
        + (
            "bad = [m for m in ('torch', 'torchvision') if m in sys.modules]\nprint(bad)\nsys.exit(1 if bad else 0)\n"
        )
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{wing} imports torch: {proc.stdout}{proc.stderr[-2000:]}"
