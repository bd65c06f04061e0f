"""`"MODULE:NAME"` plugins at validation: each bad reference fails in one line at its key's line,
and trial ids hash the plugin's code (ablation/study/plugins.py, ablation/vocabulary/plugins.py).

Each test writes its plugin modules into its own folder beside the study file and runs from
another working directory, as a researcher would.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ablation.study import StudyError, load_study, validate_files
from ablation.study.design import expand
from ablation.study.trials import plugin_code
from ablation.vocabulary import plugins

GATES = '''
from torch import nn


class Gate(nn.Module):
    def __init__(self, channels, kernel_size=3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd; got {kernel_size}")
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        return x * self.conv(x).sigmoid()


class Squash(nn.Module):
    """Halves the channels: not an attention."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 2, 1)

    def forward(self, x):
        return self.conv(x)
'''

NETS = """
from torch import nn


def net(*, num_classes, in_channels, attention, width=8):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), attention(width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
"""

DATA = """
import torch
from torch.utils.data import TensorDataset


def blobs(n=32, size=8):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)
    return {"train": TensorDataset(x, y), "val": TensorDataset(x, y), "num_classes": 3}


def broken(n=32):
    return [n]
"""


@pytest.fixture
def lab(tmp_path, monkeypatch, request):
    """A study folder with uniquely named plugin modules (gates_*, nets_*, data_*), and the
    working directory elsewhere; returns (folder, names, write(study) -> path)."""
    tag = request.node.name.replace("[", "_").replace("]", "_").replace("-", "_")[-40:]
    folder = tmp_path / "lab"
    folder.mkdir()
    names = {"gates": f"gates_{tag}", "nets": f"nets_{tag}", "data": f"data_{tag}"}
    (folder / f"{names['gates']}.py").write_text(GATES)
    (folder / f"{names['nets']}.py").write_text(NETS)
    (folder / f"{names['data']}.py").write_text(DATA)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder is put first; undone after

    def write(**changes) -> Path:
        study = {
            "study": "lab",
            "dataset": {"name": "digits", "image_size": 16},
            "model": {"backbone": "resnet20", "attention": "none"},
            "train": {"epochs": 1},
            **changes,
        }
        path = folder / "study.yaml"
        path.write_text(yaml.safe_dump(study, sort_keys=False))
        return path

    return folder, names, write


def problems_of(path: Path) -> list[str]:
    """The problems found, less the one `(not checked)` line that names the checks a broken
    base configuration held back (tests/study/test_validate.py tests that line)."""
    with pytest.raises(StudyError) as err:
        load_study(path, check_data=True)
    return [str(p) for p in err.value.problems if "(not checked)" not in str(p)]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- validation: each failure, one line at its key ----------------------------------------------


def test_a_module_that_does_not_import_is_named_with_pythons_reason(lab):
    _, _, write = lab
    path = write(model={"backbone": "resnet20", "attention": "my_gatez:Gate"})
    assert problems_of(path) == [
        f"{path}:{line_of(path, 'my_gatez')}: model.attention: cannot import 'my_gatez' "
        "(No module named 'my_gatez')"
    ]


def test_a_name_the_module_lacks(lab):
    _, names, write = lab
    path = write(model={"backbone": "resnet20", "attention": f"{names['gates']}:Nope"})
    (problem,) = problems_of(path)
    assert f"model.attention: cannot import '{names['gates']}:Nope'" in problem
    assert "has no attribute 'Nope'" in problem


def test_a_keyword_the_callable_does_not_take_names_those_it_takes(lab):
    _, names, write = lab
    model = {
        "backbone": "resnet20",
        "attention": f"{names['gates']}:Gate",
        "attention_args": {"kernel": 5},
    }
    path = write(model=model)
    assert problems_of(path) == [
        f"{path}:{line_of(path, 'attention_args')}: model.attention_args: "
        f"{names['gates']}:Gate does not accept 'kernel'; it accepts: kernel_size"
    ]


def test_arguments_given_to_none(lab):
    _, _, write = lab
    path = write(model={"backbone": "resnet20", "attention": "none", "attention_args": {"k": 3}})
    (problem,) = problems_of(path)
    assert problem.endswith("model.attention_args: attention 'none' takes no arguments; got k")


def test_a_constructor_that_raises_gives_its_message(lab):
    _, names, write = lab
    model = {
        "backbone": "resnet20",
        "attention": f"{names['gates']}:Gate",
        "attention_args": {"kernel_size": 4},
    }
    path = write(model=model)
    (problem,) = problems_of(path)
    assert f"model.attention: {names['gates']}:Gate(16, kernel_size=4) raised ValueError: " in (
        problem
    )
    assert problem.endswith("kernel_size must be odd; got 4")


def test_an_attention_that_changes_the_shape(lab):
    _, names, write = lab
    path = write(model={"backbone": "resnet20", "attention": f"{names['gates']}:Squash"})
    (problem,) = problems_of(path)
    assert f"model.attention: {names['gates']}:Squash changes the shape of its input: " in problem
    assert "(2, 16, 16, 16) -> (2, 8, 16, 16)" in problem


def test_a_problem_of_one_variant_is_at_that_variants_line(lab):
    _, names, write = lab
    gate = f"{names['gates']}:Gate"
    path = write(
        variants=[
            {"name": "good", "model.attention": gate},
            {"name": "bad", "model.attention": gate, "model.attention_args": {"kernel_size": 2}},
        ],
    )
    (problem,) = problems_of(path)
    bad_line = line_of(path, "name: bad")
    line = int(problem.removeprefix(f"{path}:").split(":")[0])
    assert bad_line - 1 <= line <= bad_line + 2  # a line of the variant's own keys
    assert ": variants[1].model.attention: " in problem
    assert problem.endswith("kernel_size must be odd; got 2")


def test_a_backbone_and_a_data_set_of_ones_own_validate_from_another_folder(lab, capsys):
    folder, names, write = lab
    path = write(
        dataset={"name": f"{names['data']}:blobs", "args": {"n": 16}},
        model={
            "backbone": f"{names['nets']}:net",
            "backbone_args": {"width": 4},
            "attention": f"{names['gates']}:Gate",
        },
    )
    assert Path.cwd() != folder
    assert validate_files([str(path)]) == 0, capsys.readouterr().err


def test_bad_backbone_and_data_set_keywords_and_results(lab):
    _, names, write = lab
    path = write(
        dataset={"name": f"{names['data']}:broken"},
        model={"backbone": f"{names['nets']}:net", "backbone_args": {"depth": 3}},
    )
    (problem,) = problems_of(path)
    assert "dataset.name" in problem and "must return a mapping with train, val" in problem
    path = write(
        dataset={"name": f"{names['data']}:blobs"},
        model={"backbone": f"{names['nets']}:net", "backbone_args": {"depth": 3}},
    )
    (problem,) = problems_of(path)
    assert f"model.backbone_args: {names['nets']}:net does not accept 'depth'; it accepts: " in (
        problem
    )
    assert problem.endswith("width")


def test_built_in_keys_refused_for_a_plugin_data_set_and_args_for_built_ins(lab):
    _, names, write = lab
    path = write(
        dataset={"name": f"{names['data']}:blobs", "image_size": 16},
        model={"backbone": "resnet20", "backbone_args": {"width": 4}},
    )
    found = problems_of(path)
    assert any("dataset.image_size: applies to the built-in data sets only" in p for p in found)
    assert any("model.backbone_args: backbone 'resnet20' is built in" in p for p in found)


def test_validation_without_plugins_does_not_import_torch(tmp_path):
    study = {"study": "plain", "dataset": {"name": "digits"}, "model": {"backbone": "resnet20"}}
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(study))
    probe = (
        "import sys; from ablation.study import load_study; "
        f"load_study({str(path)!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# -- trial ids: plugin code ----------------------------------------------------------------------


def ids_by_variant(path: Path) -> dict[str, str]:
    return {t.variant: t.trial_id for t in expand(load_study(path)) if t.seed == 0}


def test_editing_a_plugin_changes_exactly_the_ids_of_its_trials(lab):
    # Module files hash every .py file of their folder (they may import each other), so an
    # edit there changes the ids of every module-file plugin's trials, and of no other.
    folder, names, write = lab
    gate, squash_free = f"{names['gates']}:Gate", f"{names['nets']}:net"
    path = write(
        variants=[
            {"name": "gate", "model.attention": gate},
            {"name": "own-backbone", "model.backbone": squash_free},
            {"name": "se", "model.attention": "se"},
        ],
    )
    before = ids_by_variant(path)
    gates_file = folder / f"{names['gates']}.py"
    gates_file.write_text(gates_file.read_text() + "\n# a comment is an edit too\n")
    after = ids_by_variant(path)
    changed = {v for v in before if before[v] != after[v]}
    assert changed == {"gate", "own-backbone"}
    (folder / "notes.txt").write_text("not code")
    assert ids_by_variant(path) == after


def test_a_module_plugins_neighbours_travel_and_are_hashed(lab):
    """A module-file plugin that imports a .py file beside it: the neighbour travels to the
    workers (plugin_folders, what Ray's py_modules gets), an import of it works where only
    those files are, and editing it changes the plugin's trial ids."""
    from ablation.study.plugins import plugin_folders

    folder, names, write = lab
    helper = f"helpers_{names['gates']}"
    (folder / f"{helper}.py").write_text("KERNEL = 3\n")
    own = f"own_{names['gates']}"
    (folder / f"{own}.py").write_text(
        GATES.replace("kernel_size=3", f"kernel_size={helper}.KERNEL").replace(
            "from torch import nn", f"from torch import nn\nimport {helper}"
        )
    )
    (folder / "notes.txt").write_text("not code")
    path = write(model={"backbone": "resnet20", "attention": f"{own}:Gate"})
    study = load_study(path)
    shipped = plugin_folders(study)
    assert folder / f"{helper}.py" in shipped and folder / f"{own}.py" in shipped
    assert all(p.suffix == ".py" and p.parent == folder for p in shipped)
    # A worker's view: only the shipped files, in a folder of their own.
    worker = folder.parent / "worker"
    worker.mkdir()
    for p in shipped:
        (worker / p.name).write_bytes(p.read_bytes())
    probe = f"import {own}; print({own}.Gate(4).conv.kernel_size)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=worker, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "(3, 3)", out.stderr
    first = ids_by_variant(path)
    (folder / f"{helper}.py").write_text("KERNEL = 5\n")
    assert ids_by_variant(path) != first


def test_without_data_checks_a_plugin_data_set_is_not_called(lab, capsys):
    """`validate --no-data-check` and `submit`: the data may exist only on the cluster. The
    data set's keywords are still checked; the model is built on a placeholder shape."""
    folder, names, write = lab
    (folder / f"{names['data']}.py").write_text(
        DATA + "\n\ndef cluster_only(root='/cluster/data'):\n    raise FileNotFoundError(root)\n"
    )
    path = write(
        dataset={"name": f"{names['data']}:cluster_only", "args": {"root": "/nowhere"}},
        model={"backbone": f"{names['nets']}:net", "attention": f"{names['gates']}:Gate"},
    )
    assert validate_files([str(path)], check_data=False) == 0, capsys.readouterr().err
    load_study(path)  # what submit and run --address load
    assert validate_files([str(path)], check_data=True) == 2
    assert "FileNotFoundError: /nowhere" in capsys.readouterr().err
    path = write(
        dataset={"name": f"{names['data']}:cluster_only", "args": {"rot": "/nowhere"}},
        model={"backbone": f"{names['nets']}:net", "backbone_args": {"depth": 2}},
    )
    assert validate_files([str(path)], check_data=False) == 2
    err = capsys.readouterr().err
    assert "dataset.args: " in err and "does not accept 'rot'; it accepts: root" in err


def test_a_package_plugin_hashes_every_py_file_of_its_top_level_package(lab):
    folder, _, write = lab
    package = folder / "labpkg_hash"
    (package / "gates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "gates" / "__init__.py").write_text(GATES)
    (package / "helpers.py").write_text("X = 1\n")
    (package / "notes.txt").write_text("not code")
    path = write(model={"backbone": "resnet20", "attention": "labpkg_hash.gates:Gate"})
    first = ids_by_variant(path)
    (package / "notes.txt").write_text("still not code")
    assert ids_by_variant(path) == first
    (package / "helpers.py").write_text("X = 2\n")  # a sibling module the gate may import
    assert ids_by_variant(path) != first
    source = plugins.plugin_source("labpkg_hash.gates:Gate", folder)
    assert source.kind == "folder"
    assert sorted(p.name for p in source.files) == ["__init__.py", "__init__.py", "helpers.py"]


def fake_distribution(site: Path, name: str, version: str, *, editable_from: Path | None = None):
    """An installed distribution `name` (module `name`) in the folder `site`."""
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text(GATES)
    info = site / f"{name}-{version}.dist-info"
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    if editable_from is not None:
        url = {"url": editable_from.as_uri(), "dir_info": {"editable": True}}
        (info / "direct_url.json").write_text(json.dumps(url))


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    plugins._distributions.cache_clear()
    yield folder
    plugins._distributions.cache_clear()
    importlib.invalidate_caches()


def plugin_config(ref: str) -> dict:
    return {"dataset": {"name": "digits"}, "model": {"backbone": "resnet20", "attention": ref}}


def test_an_installed_distribution_is_hashed_by_name_and_version(site):
    fake_distribution(site, "labgates_release", "1.0")
    first = plugin_code(plugin_config("labgates_release:Gate"))
    assert first == {
        "labgates_release:Gate": {"distribution": "labgates_release", "version": "1.0"}
    }
    (site / "labgates_release" / "__init__.py").write_text(GATES + "\n# edited\n")
    assert plugin_code(plugin_config("labgates_release:Gate")) == first  # a release is its version
    fake_distribution(site, "labgates_release", "1.1")
    plugins._distributions.cache_clear()
    assert plugin_code(plugin_config("labgates_release:Gate")) != first


def test_an_editable_install_is_hashed_by_its_sources(site):
    fake_distribution(site, "labgates_editable", "0.1", editable_from=site)
    first = plugin_code(plugin_config("labgates_editable:Gate"))
    assert list(first["labgates_editable:Gate"]) == ["sources"]
    (site / "labgates_editable" / "__init__.py").write_text(GATES + "\n# edited\n")
    assert plugin_code(plugin_config("labgates_editable:Gate")) != first


def test_a_setuptools_editable_install_is_found_and_hashed_by_its_sources(site, tmp_path):
    """`pip install -e` with setuptools puts no folder on sys.path: its own finder on
    sys.meta_path maps the package to its sources. The finder here is setuptools' own code
    (its template, as `pip install -e` writes it), for a package outside sys.path."""
    from setuptools.command.editable_wheel import _finder_template

    src = tmp_path / "src" / "labgates_finder"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text(GATES)
    fake_distribution(site, "labgates_finder", "0.1", editable_from=src.parent)
    shutil.rmtree(site / "labgates_finder")  # the dist-info stays; the code is under src/
    code = _finder_template("labgates_finder", {"labgates_finder": str(src)}, {})
    finder = tmp_path / "__editable___labgates_finder_0_1_finder.py"
    finder.write_text(code)
    spec = importlib.util.spec_from_file_location(finder.stem, finder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()
    try:
        assert importlib.machinery.PathFinder.find_spec("labgates_finder") is None
        source = plugins.plugin_source("labgates_finder:Gate")
        assert (source.kind, source.files) == ("editable", (src / "__init__.py",))
        first = plugin_code(plugin_config("labgates_finder:Gate"))
        (src / "__init__.py").write_text(GATES + "\n# edited\n")
        assert plugin_code(plugin_config("labgates_finder:Gate")) != first
        assert plugins.load_plugin("labgates_finder:Gate")(4) is not None
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if f is not module._EditableFinder]
        sys.modules.pop("labgates_finder", None)


def test_a_module_of_this_editable_install_is_hashed_by_its_sources():
    # This repository is installed with `pip install -e`: its modules are plugins like any.
    source = plugins.plugin_source("ablation.attention.simam:SimAM")
    assert source.kind == "editable"
    assert any(p.name == "simam.py" for p in source.files)
    (code,) = plugin_code(plugin_config("ablation.attention.simam:SimAM")).values()
    assert "ablation/attention/simam.py" in code["sources"]


def test_a_zoo_attention_hashes_its_librarys_version():
    # eca comes from timm: its version is in the trial id; simam is written here, so the
    # package's own sources (code_version) already cover it.
    assert plugin_code(plugin_config("eca")) == {
        "zoo:eca": {"distribution": "timm", "version": importlib.metadata.version("timm")}
    }
    assert plugin_code(plugin_config("simam")) == {}
    assert plugin_code(plugin_config("cbam")) == {}


def test_built_in_configs_hash_no_plugins():
    assert plugin_code(plugin_config("cbam")) == {}


def test_parse_plugin_refuses_what_is_not_module_colon_name():
    assert plugins.parse_plugin("a.b:C") == plugins.PluginRef("a.b", "C")
    for bad in ("a:", ":C", "a:b:c", "a-b:C", "a.:C"):
        with pytest.raises(plugins.PluginError, match="is not MODULE:NAME"):
            plugins.parse_plugin(bad)


def test_a_malformed_reference_is_a_schema_problem(lab):
    _, _, write = lab
    path = write(model={"backbone": "resnet20", "attention": "my-gates:Gate"})
    (problem,) = problems_of(path)
    assert "model.attention" in problem and "is not MODULE:NAME" in problem


@pytest.mark.parametrize("key", ["model.attention", "model.backbone", "dataset.name"])
def test_plugin_keys_name_their_argument_keys(key):
    assert plugins.PLUGIN_KEYS[key].endswith("args")


def test_textwrap_keeps_sources_as_written():  # the sources above are module text as-is
    assert textwrap.dedent(GATES) == GATES


def test_a_factor_addresses_one_keyword_of_the_attentions_arguments(lab):
    _, names, write = lab
    model = {
        "backbone": "resnet20",
        "attention": f"{names['gates']}:Gate",
        "attention_args": {"kernel_size": 3},  # the base: the baseline is its level
    }
    path = write(model=model, factors={"model.attention_args.kernel_size": [3, 5]})
    study = load_study(path)
    configs = {t.variant: t.config["model"]["attention_args"] for t in expand(study)}
    assert sorted(configs.values(), key=str) == [{"kernel_size": 3}, {"kernel_size": 5}]
    path = write(model=model, factors={"model.attention_args.kernel_size": [3, 4]})
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:{line_of(path, '- 4')}: factors.model.attention_args.")
    assert problem.endswith("kernel_size must be odd; got 4")
    path = write(model=model, factors={"model.attention_args.kernel_size.x": [3]})
    (problem,) = problems_of(path)
    assert "is a value, not a section" in problem


def test_the_plugin_example_validates_from_another_folder(tmp_path, monkeypatch):
    example = Path(__file__).resolve().parents[2] / "experiments" / "plugin-example" / "study.yaml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    study = load_study(example)
    assert sorted(study.plugins()) == [
        "my_data:stripes",
        "my_gates:PooledGate",
        "tiny_nets:tiny_net",
    ]
    assert len(expand(study)) == 10
