"""Help from an installed wheel: the README is not package data (its pictures would double the
wheel), so the help reads the same text from the package's metadata, pictures as captions."""

from importlib import metadata

import app.resources as resources
from app.help import ReadmeDialog, readme_section


def _installed(monkeypatch, tmp_path):
    """As from a wheel: no checkout README beside the packages."""
    monkeypatch.setattr(resources, "checkout_readme", lambda: tmp_path / "site" / "README.md")


def test_the_help_reads_the_readme_from_the_package_metadata(qtbot, monkeypatch, tmp_path):
    _installed(monkeypatch, tmp_path)
    found = resources.find_readme()
    assert found is not None and found.folder is None and "description" in found.source
    body = readme_section("The Race workspace")
    assert body is not None and body.startswith("#") and len(body) > 200
    dialog = ReadmeDialog("The Race workspace")
    qtbot.addWidget(dialog)
    html = dialog.browser.toHtml()
    assert "<img" not in html  # no broken pictures...
    assert "picture in the source README" in dialog.browser.toPlainText()  # ...their captions


def test_a_stray_readme_in_site_packages_is_not_ours(monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "README.md").write_text("# Someone else's project\n", encoding="utf-8")
    _installed(monkeypatch, tmp_path)
    assert "Someone else" not in resources.find_readme().text


def test_without_readme_or_metadata_the_help_says_so(qtbot, monkeypatch, tmp_path):
    _installed(monkeypatch, tmp_path)

    def gone(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(resources.metadata, "metadata", gone)
    assert resources.find_readme() is None
    dialog = ReadmeDialog("Troubleshooting")
    qtbot.addWidget(dialog)
    text = dialog.browser.toPlainText()
    assert "not where LossLab expects it" in text and "Reinstall LossLab" in text


def test_a_checkout_shows_the_readme_with_its_pictures(qtbot):
    found = resources.find_readme()
    assert found is not None and found.folder is not None  # tests run from a checkout
    assert (found.folder / "assets" / "screenshots").is_dir()
    dialog = ReadmeDialog("The Race workspace")
    qtbot.addWidget(dialog)
    assert "<img" in dialog.browser.toHtml()
