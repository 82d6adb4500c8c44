"""The on-disk cache of tables and irreps: location, warm loads, corruption, the `cache` commands."""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from rep_theory.algebra.irreps import build_cache, cache, verify_cache
from rep_theory.cli import main
from rep_theory.algebra.groups import Group, get_group
from rep_theory.io import save_checked
from rep_theory.algebra.irreps import compute_irreps, group_irreps, verify_irreps

ROOT = Path(__file__).resolve().parents[1]


def _same(a, b):
    return [(r.name, r.kind) for r in a] == [(r.name, r.kind) for r in b] and all(
        torch.equal(x.matrices, y.matrices) for x, y in zip(a, b))


def _never(*_):
    raise AssertionError("computed although the cache should have served it")


# --- location ---------------------------------------------------------------------------------------------
def test_env_var_is_honoured(tmp_cache):
    assert cache.cache_dir() == tmp_cache
    G = get_group("S4")
    irreps = group_irreps(G)
    path = tmp_cache / f"v{cache.FORMAT_VERSION}" / "S4.pt"
    assert path.is_file() and cache.cache_path("S4") == path
    verify_irreps(G, irreps)


def test_default_is_the_checkout_then_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("REP_THEORY_CACHE", raising=False)
    assert cache.cache_dir() == ROOT / "utils" / "cache"  # tests run from a source checkout
    # an installed package (no pyproject.toml beside it) uses the user cache folder
    monkeypatch.setattr(cache, "__file__", str(tmp_path / "site-packages" / "rep_theory" / "cache.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "rep_theory"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "rep_theory"


def test_cache_key_is_spec_and_format_version(tmp_path):
    assert cache.cache_path("C4xC6", tmp_path) == tmp_path / f"v{cache.FORMAT_VERSION}" / "C4xC6.pt"
    with pytest.raises(ValueError, match="group specs"):
        cache.cache_path("../evil", tmp_path)


# --- warm loads -------------------------------------------------------------------------------------------
def test_warm_load_returns_the_same_irreps_without_computing(tmp_cache):
    G = get_group("A5")
    cold = group_irreps(G)
    warm = cache.cached_irreps(G, _never)
    assert _same(cold, warm)
    assert warm[0].group == "A5" and repr(warm[3]) == "A5:a5_3d_a(d=3)"


def test_only_spec_groups_are_cached(tmp_cache):
    T = Group.from_table(get_group("C4").table)
    assert not cache.is_cacheable(T)
    verify_irreps(T, group_irreps(T))
    assert not tmp_cache.exists() or not any(tmp_cache.rglob("*.pt"))
    with pytest.raises(ValueError, match="only groups made from a spec"):
        cache.save_irreps(T, group_irreps(T))
    # a table group that borrows a spec name but not its table is not the spec group
    impostor = Group.from_table(get_group("C4").table, name="C2xC2")
    assert not cache.is_cacheable(impostor)


# --- corruption -------------------------------------------------------------------------------------------
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_payload(path):
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 2, len(data) // 2 + 16):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_header(path):
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def _empty(path):
    path.write_bytes(b"")


def _stale_table(path):  # a valid file whose table is not the group's current one
    payload = torch.load(io.BytesIO(path.read_bytes().split(b"\n", 2)[2]), weights_only=False)
    payload["table"] = payload["table"].flip(0)
    save_checked(path, payload)


def _not_a_dict(path):
    save_checked(path, ["not", "a", "cache", "entry"])


@pytest.mark.parametrize("damage", [_truncate, _flip_payload, _flip_header, _empty, _stale_table, _not_a_dict])
def test_a_damaged_file_warns_rebuilds_and_is_repaired(tmp_cache, damage):
    G = get_group("S4")
    fresh = compute_irreps(G)
    group_irreps(G)
    path = cache.cache_path("S4")
    damage(path)
    with pytest.warns(cache.CacheWarning, match="S4"):
        rebuilt = group_irreps(G)
    assert _same(rebuilt, fresh)
    verify_irreps(G, rebuilt)
    assert _same(cache.load_irreps(G), fresh)          # the file was rewritten and loads cleanly
    assert _same(cache.cached_irreps(G, _never), fresh)


def test_an_unwritable_cache_warns_and_still_answers(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("REP_THEORY_CACHE", str(blocker / "cache"))
    G = get_group("S3")
    with pytest.warns(cache.CacheWarning, match="could not write"):
        irreps = group_irreps(G)
    verify_irreps(G, irreps)


# --- build / verify and their commands ------------------------------------------------------------------------
def test_build_then_verify(tmp_cache):
    report = build_cache(["C5", "S3", "C2xS3"])
    assert [r["source"] for r in report] == ["computed"] * 3
    assert [r["spec"] for r in report] == ["C5", "S3", "C2xS3"]
    assert [r["source"] for r in build_cache(["C5"])] == ["cache"]
    assert [r["source"] for r in build_cache(["C5"], force=True)] == ["computed"]
    results = verify_cache()
    # the product's factor C2 was cached on the way
    assert [(r["spec"], r["ok"]) for r in results] == [("C2", True), ("C2xS3", True), ("C5", True), ("S3", True)]


def test_verify_reports_a_file_whose_irreps_are_wrong(tmp_cache):
    build_cache(["S3"])
    G = get_group("S3")
    payload = cache._encode(G, compute_irreps(G))
    payload["irreps"][2]["matrices"][1] *= -1  # checksum fine, maths wrong
    save_checked(cache.cache_path("S3"), payload)
    [result] = verify_cache()
    assert not result["ok"] and "not a homomorphism" in result["message"]
    with pytest.warns(cache.CacheWarning, match="unusable"):  # build notices and repairs it
        assert build_cache(["S3"])[0]["source"] == "computed"
    assert verify_cache()[0]["ok"]


def test_cache_commands(tmp_cache, capsys):
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_cache)
    assert main(["cache", "verify"]) == 0
    assert "no cache files" in capsys.readouterr().out
    assert main(["cache", "build", "C6", "D4"]) == 0
    out = capsys.readouterr().out
    assert "C6" in out and "D4" in out and "computed" in out
    assert main(["cache", "verify"]) == 0
    assert capsys.readouterr().out.count("ok") == 2
    _truncate(cache.cache_path("D4"))
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "D4" in out and "checksum" in out


def test_cache_build_default_is_the_papers_groups():
    assert cache.PAPER_SPECS == ("C113", "C118", "D59", "D61", "S5", "S6", "A5")


def test_bad_spec_on_the_command_line(tmp_cache, capsys):
    assert main(["cache", "build", "X5"]) == 2
    assert "X5" in capsys.readouterr().err


# --- download_cache.sh ---------------------------------------------------------------------------------------
def _run_script(tmp_cache, tmp_path, *args, **env_extra):
    """Run download_cache.sh with a stub CLI (no Python start-up) that records the build it is asked for."""
    stub = tmp_path / "stub-cli"
    stub.write_text('#!/usr/bin/env bash\n'
                    'if [ "$1 $2" = "cache path" ]; then echo "$REP_THEORY_CACHE"; else echo "stub-cli $*"; fi\n')
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REP_THEORY_")}
    env.update(REP_THEORY_CACHE=str(tmp_cache), REP_THEORY_CLI=str(stub), **env_extra)
    return subprocess.run(["bash", str(ROOT / "download_cache.sh"), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_download_script_uses_a_matching_archive_and_ignores_a_bad_one(tmp_cache, tmp_path):
    source = tmp_path / "source"  # an archive holding a good S3 file, made with the library
    cache.save_irreps(get_group("S3"), compute_irreps(get_group("S3")), source)
    archive = tmp_path / "cache.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / f"v{cache.FORMAT_VERSION}", arcname=f"v{cache.FORMAT_VERSION}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    bad = _run_script(tmp_cache, tmp_path, "S3", REP_THEORY_CACHE_URL=archive.as_uri(),
                      REP_THEORY_CACHE_SHA256="0" * 64)
    assert bad.returncode == 0, bad.stderr
    assert "sha256" in bad.stderr and "building locally" in bad.stderr
    assert bad.stdout.strip() == "stub-cli cache build S3"
    assert not cache.cache_path("S3").exists()

    missing_sum = _run_script(tmp_cache, tmp_path, REP_THEORY_CACHE_URL=archive.as_uri())
    assert "REP_THEORY_CACHE_SHA256 is not" in missing_sum.stderr
    assert missing_sum.stdout.strip() == "stub-cli cache build C113 C118 D59 D61 S5 S6 A5"

    good = _run_script(tmp_cache, tmp_path, "S3", REP_THEORY_CACHE_URL=archive.as_uri(),
                       REP_THEORY_CACHE_SHA256=digest.upper())
    assert good.returncode == 0, good.stderr
    assert "unpacked 1 cache files" in good.stdout and "stub-cli cache build S3" in good.stdout
    assert cache.cache_path("S3").read_bytes() == (source / f"v{cache.FORMAT_VERSION}" / "S3.pt").read_bytes()
    assert build_cache(["S3"])[0]["source"] == "cache"  # the downloaded file loads and verifies


def test_download_script_builds_locally(tmp_cache):
    """End to end with the real command (one Python start-up)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REP_THEORY_")}
    env.update(REP_THEORY_CACHE=str(tmp_cache), REP_THEORY_CLI=f"{sys.executable} -m rep_theory")
    run = subprocess.run(["bash", str(ROOT / "download_cache.sh"), "C5", "S3"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("computed") == 2
    assert [r["ok"] for r in verify_cache()] == [True, True]


# --- trust: another version's file, and irreps verified before they are written ------------------------
def test_a_file_written_by_another_version_is_rebuilt(tmp_cache):
    from rep_theory.io import load_checked
    G = get_group("S3")
    fresh = compute_irreps(G)
    cache.save_irreps(G, fresh)
    path = cache.cache_path("S3")
    payload = load_checked(path)
    payload["package_version"] = "0.0.0-elsewhere"
    save_checked(path, payload)
    with pytest.warns(cache.CacheWarning, match="0.0.0-elsewhere"):
        again = cache.cached_irreps(G, lambda: compute_irreps(G), verify_irreps)
    assert _same(again, fresh)
    assert load_checked(path)["package_version"] != "0.0.0-elsewhere"  # rewritten by this version


def test_irreps_are_verified_before_they_are_cached(tmp_cache):
    G = get_group("S3")
    wrong = compute_irreps(G)[:-1]  # one irrep missing: not the complete list
    with pytest.raises(ValueError, match="real classes"):
        cache.cached_irreps(G, lambda: wrong, verify_irreps)
    assert not cache.cache_path("S3").exists()
