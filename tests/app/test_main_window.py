"""The main window's own parts: recent files, the guided tours and README help, File > Export
following the shown tab, and a window that fits a small screen."""

import pytest

from app.help import TOURS, ReadmeDialog, readme_section
from app.recent import RecentFiles


@pytest.fixture
def window(main_window):
    return main_window


def test_saved_and_opened_sessions_are_recent_and_reopen(window, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert window.save_session(str(a)) and window.save_session(str(b))
    assert [e.path for e in window.recent.entries()] == [str(b), str(a)]
    assert window.open_session(str(a))  # opening moves it to the top, once
    assert [e.path for e in window.recent.entries()] == [str(a), str(b)]
    window._fill_recent_menu()
    labels = [act.text() for act in window.recent_menu.actions()]
    assert labels[0].startswith("a.json") and "race session" in labels[0]
    assert window.open_recent(window.recent.entries()[1])


def test_a_recent_file_that_is_gone_is_said_and_dropped(window, tmp_path, warnings):
    path = tmp_path / "gone.json"
    assert window.save_session(str(path))
    path.unlink()
    assert not window.open_recent(window.recent.entries()[0])
    assert warnings and "no longer exists" in warnings[-1][1]
    assert window.recent.entries() == []


def test_recent_list_is_bounded_and_survives_damaged_settings(settings, tmp_path):
    recent = RecentFiles(settings)
    for i in range(15):
        recent.add("run", str(tmp_path / f"r{i}.json"))
    assert len(recent.entries()) == 10 and recent.entries()[0].path.endswith("r14.json")
    settings.setValue("recent_files", "{not json")
    assert recent.entries() == []
    with pytest.raises(ValueError, match="Unknown kind"):
        recent.add("picture", str(tmp_path / "x.png"))
    recent.add("landscape", str(tmp_path / "l.npz"))
    recent.clear()
    assert recent.entries() == []


def test_every_tour_step_outlines_its_widget(window, qtbot):
    """Every tab's tour, one after the other in one window (each starts on its own tab)."""
    assert len(TOURS) >= 3  # one per tab
    for tab in sorted(TOURS):
        tour = window.start_tour(tab)
        qtbot.addWidget(tour)
        assert window.tabs.currentIndex() == tab
        for i, step in enumerate(tour.steps):
            tour.show_step(i)
            assert tour.text.text() == step.text, (tab, i)
            if step.widget is not None:
                assert tour.target() is not None, f"tour {tab} step {i}: no widget {step.widget!r}"
                assert tour.outline.isVisible(), (tab, i)
        assert tour.next.text() == "Done"
        tour.next.click()
        assert not tour.isVisible() and not tour.outline.isVisible()


def test_help_shows_the_readme_sections_the_tours_name(qtbot, tmp_path):
    for section in [s for _, s, _ in TOURS.values()] + ["Command line", "Troubleshooting"]:
        body = readme_section(section)
        assert body is not None and body.startswith("#") and len(body) > 200, section
        assert "\n## " not in body  # stops at the next section of its level
    command_line = readme_section("Command line")  # its shell comments are not headings
    assert "losslab landscape" in command_line and "losslab train" in command_line
    dialog = ReadmeDialog("Troubleshooting")
    qtbot.addWidget(dialog)
    assert "Troubleshooting" in dialog.browser.toPlainText()
    missing = ReadmeDialog("Troubleshooting", readme=tmp_path / "README.md")
    qtbot.addWidget(missing)
    assert "not where LossLab expects it" in missing.browser.toPlainText()


def test_file_export_lists_the_shown_tabs_exports(window):
    for index, word in ((0, "Surface view"), (1, "Curves"), (2, "Landscape")):
        window.tabs.setCurrentIndex(index)
        window._fill_export_menu()
        labels = [a.text() for a in window.export_menu.actions()]
        assert labels and any(word in t for t in labels), (index, labels)


def test_window_shrinks_to_a_small_laptop_screen(window, qtbot):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 720, hint
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 720, timeout=5000)


def test_no_plot_offers_pyqtgraphs_context_menu(window):
    """Right-click on a plot does nothing: pyqtgraph's menus (axis ranges, log mode, export)
    would change the views behind the workspaces' backs. They are never built either (each
    cost ~13 ms of the window's start)."""
    import pyqtgraph as pg

    items = [w.getPlotItem() for w in window.findChildren(pg.PlotWidget)]
    for layout in window.findChildren(pg.GraphicsLayoutWidget):
        items += [i for i in layout.ci.items if isinstance(i, pg.PlotItem)]
    assert len(items) >= 10  # every workspace's plots, hidden tabs included
    for item in items:
        assert not item.menuEnabled() and item.getViewBox().menu is None, item
