"""The stand-in base image builder, without an engine: the mirror it picks and what it refuses."""

from __future__ import annotations

import subprocess

import pytest

from services.lab.backends.compose import standin
from services.lab.errors import LabCommandError


def test_the_mirror_is_the_machines_own_apt_source(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert standin.apt_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("# old style\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert standin.apt_mirror(tmp_path) == "http://other.example/debian"
    (tmp_path / "sources.list").unlink()
    assert standin.apt_mirror(tmp_path) == standin.DEFAULT_MIRROR


def _engine(monkeypatch, *, has_image: bool) -> list:
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        if cmd[:3] == ["docker", "image", "inspect"]:
            return subprocess.CompletedProcess(cmd, 0 if has_image else 1, "",
                                               "" if has_image else "Error: No such image: sdlab-base:bookworm")
        raise AssertionError(f"unexpected {cmd}")

    monkeypatch.setattr(standin.subprocess, "run", run)
    monkeypatch.setattr(standin.shutil, "which", lambda name: f"/usr/bin/{name}")
    return calls


def test_a_present_base_is_reused_without_building(monkeypatch):
    calls = _engine(monkeypatch, has_image=True)
    assert standin.ensure_base_image(say=lambda _: None) == standin.BASE_TAG
    assert len(calls) == 1


def test_building_needs_debootstrap_and_root(monkeypatch):
    _engine(monkeypatch, has_image=False)
    monkeypatch.setattr(standin.shutil, "which", lambda name: None if name == "debootstrap" else f"/usr/bin/{name}")
    with pytest.raises(LabCommandError, match="debootstrap is not installed"):
        standin.ensure_base_image(say=lambda _: None)
    monkeypatch.setattr(standin.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(standin.os, "geteuid", lambda: 1000)
    with pytest.raises(LabCommandError, match="needs root"):
        standin.ensure_base_image(say=lambda _: None)


def test_an_engine_that_does_not_answer_is_named(monkeypatch):
    monkeypatch.setattr(standin.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(standin.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"))
    with pytest.raises(LabCommandError, match="start dockerd"):
        standin.ensure_base_image(say=lambda _: None)
