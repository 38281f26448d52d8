"""Nothing in the repository depends on one machine: no absolute checkout or home paths,
bench/run finds meshd from the repo, a flag or MESHD_BIN, and `make deps` shows what it
installs while saying nothing when nothing is missing."""
import importlib.machinery
import importlib.util
import os
import subprocess

from conftest import ROOT

# Spelled in pieces so this file does not match itself.
MACHINE_PATHS = ["/" + p + "/" for p in ("work", "root", "home", "tmp")]


def tracked_text_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True, timeout=30).stdout
    for name in filter(None, out.decode().split("\0")):
        path = os.path.join(ROOT, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" not in data:
            yield name, data.decode("utf-8", "replace")


def test_no_machine_specific_paths():
    found = [f"{name}:{i + 1}: {line.strip()}"
             for name, text in tracked_text_files()
             for i, line in enumerate(text.split("\n"))
             if any(p in line for p in MACHINE_PATHS)]
    assert found == []


def load_bench_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(ROOT, "bench", "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_bench_finds_meshd_by_flag_env_or_repo(tmp_path, monkeypatch):
    bench = load_bench_run()
    monkeypatch.setenv("MESHD_BIN", str(tmp_path / "from-env"))
    assert bench.find_meshd(str(tmp_path / "from-flag")) == str(tmp_path / "from-flag")
    assert bench.find_meshd() == str(tmp_path / "from-env")
    monkeypatch.delenv("MESHD_BIN")
    # Only this repo's own builds are candidates.
    monkeypatch.setattr(bench, "ROOT", str(tmp_path))
    assert bench.find_meshd() is None
    (tmp_path / ".build" / "debug").mkdir(parents=True)
    binary = tmp_path / ".build" / "debug" / "meshd"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert bench.find_meshd() == str(binary)


def make_deps(tmp_path, *variables):
    """`make deps` with apt-get replaced by a stand-in that prints progress as apt does."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "apt-get").write_text('#!/bin/sh\necho "apt-get $*"\n')
    (fake / "apt-get").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    return subprocess.run(["make", "-s", "-C", ROOT, "deps", *variables], capture_output=True, text=True,
                          env=env, timeout=120)


def test_make_deps_shows_what_it_installs(tmp_path):
    r = make_deps(tmp_path, "APT_PACKAGES=curl meshd-test-no-such-package")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split("\n")
    assert "==> apt: installing meshd-test-no-such-package" in lines
    # apt runs with its normal output, shown rather than swallowed (no -qq, no redirection).
    assert "apt-get update" in lines
    assert "apt-get install -y meshd-test-no-such-package" in lines


def test_make_deps_is_quiet_when_nothing_is_missing(tmp_path):
    r = make_deps(tmp_path, "APT_PACKAGES=curl")
    assert r.returncode == 0, r.stdout + r.stderr
    # Only the Python test clients could be missing, and the suite runs, so they are there.
    assert r.stdout == "" and r.stderr == ""
