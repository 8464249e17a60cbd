"""The report package: classical MDS, figures, HTML page and the atomic output folder."""

from __future__ import annotations

import base64
import io
import re

import matplotlib as mpl
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from wtraj.report import html, plots
from wtraj.report.embedding import classical_mds
from wtraj.report.writer import OutputFolder


def _walks(n_runs=3, n=12, d=40, seed=0):
    rng = np.random.default_rng(seed)
    X, runs = [], []
    for r in range(n_runs):
        start = rng.standard_normal(d) * 3
        steps = rng.standard_normal((n - 1, d)) / np.arange(1, n)[:, None]
        X.append(np.vstack([start, start + np.cumsum(steps, axis=0)]))
        runs.append(np.arange(n) + r * n)
    return np.vstack(X), runs


# classical MDS


def test_mds_equals_pca_of_the_data():
    X, _ = _walks()
    emb = classical_mds(cdist(X, X), 3)
    centred = X - X.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    pca = centred @ vt[:3].T
    # equal up to the sign of each axis
    for k in range(3):
        sign = np.sign(pca[:, k] @ emb.coordinates[:, k])
        np.testing.assert_allclose(emb.coordinates[:, k], sign * pca[:, k], atol=1e-9)
    variance = singular**2
    np.testing.assert_allclose(emb.explained_variance_ratio, variance[:3] / variance.sum(), rtol=1e-9)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    st.integers(min_value=2, max_value=15),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=0, max_value=2**16),
)
def test_mds_reproduces_distances_of_low_dimensional_points(n, dim, seed):
    X = np.random.default_rng(seed).standard_normal((n, dim))
    D = cdist(X, X)
    emb = classical_mds(D, n_components=max(dim, 1))
    np.testing.assert_allclose(cdist(emb.coordinates, emb.coordinates), D, atol=1e-8 * (1 + D.max()))
    assert emb.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-9)


def test_mds_of_identical_points_is_zero():
    emb = classical_mds(np.zeros((4, 4)), 3)
    assert np.all(emb.coordinates == 0) and np.all(emb.explained_variance_ratio == 0)


@pytest.mark.parametrize(
    ("D", "message"),
    [
        (np.zeros((3, 4)), "square"),
        (np.array([[0, 1], [2, 0.0]]), "not symmetric"),
        (np.array([[0, np.nan], [np.nan, 0]]), "NaN"),
        (np.array([[0, -1], [-1, 0.0]]), "negative"),
    ],
)
def test_mds_rejects_bad_matrices(D, message):
    with pytest.raises(ValueError, match=message):
        classical_mds(D)


# figures


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _texts(figure) -> str:
    """Every text drawn in a figure (titles, labels, tick labels, legend entries)."""
    figure.canvas.draw()
    found = [t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text"))]
    return "\n".join(found)


def test_steps_figure_has_labelled_axes_legend_and_shift_marks():
    X, runs = _walks()
    curves = []
    for i, rows in enumerate(runs):
        steps = np.linalg.norm(np.diff(X[rows], axis=0), axis=1)
        curves.append(
            plots.RunCurve(
                f"run {i}",
                steps,
                np.full(len(rows) - 2, 0.5),
                np.arange(len(rows)),
                shifts=(5,) if i == 1 else (),
                slowdowns=(8,) if i == 2 else (),
            )
        )
    figure = plots.steps_figure(curves)
    text = _texts(figure)
    for expected in (
        "step norm",
        "turning angle",
        "(degrees)",
        "distance from first",
        "run 0",
        "run 2",
        "detected shift",
        "detected slowdown",
        "checkpoint position",
    ):
        assert expected in text
    ax_step = figure.axes[0]
    assert ax_step.get_yscale() == "log"
    # the shift of run 1 (dashed) and the slowdown of run 2 (dotted) on every time axis
    for ax in figure.axes:
        marks = {(line.get_xdata()[0], line.get_linestyle()) for line in ax.get_lines()
                 if list(line.get_xdata()) in ([5, 5], [8, 8])}  # fmt: skip
        assert marks == {(5, "--"), (8, ":")}
    width, height = _png_size(plots.png_bytes(figure))
    assert width >= 800 and height >= 800


def test_heatmap_groups_runs_in_order():
    X, runs = _walks(n_runs=2, n=5)
    D = cdist(X, X)
    shuffled = [runs[1][::-1], runs[0]]
    figure = plots.distance_heatmap_figure(D, shuffled, ["a", "b"])
    image = figure.axes[0].get_images()[0].get_array()
    permutation = np.concatenate(shuffled)
    np.testing.assert_array_equal(image, D[np.ix_(permutation, permutation)])
    assert "euclidean distance" in _texts(figure)


@pytest.mark.parametrize("dims", [2, 3])
def test_embedding_figure_axes_say_explained_variance(dims):
    X, runs = _walks()
    emb = classical_mds(cdist(X, X), 3)
    figure = plots.embedding_figure(
        emb.coordinates, emb.explained_variance_ratio, runs, ["r0", "r1", "r2"], dims
    )
    text = _texts(figure)
    first = f"MDS 1 ({100 * emb.explained_variance_ratio[0]:.1f} % of variance)"
    assert first in text and "first checkpoint" in text and "last checkpoint" in text
    if dims == 3:
        assert "MDS 3" in text
    _png_size(plots.png_bytes(figure))


def test_embedding_figure_refuses_other_dimensions():
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        plots.embedding_figure(np.zeros((3, 3)), np.zeros(3), [np.arange(3)], ["r"], 4)


def test_layer_figure_keeps_most_changed_layers():
    rng = np.random.default_rng(0)
    names = [f"layer{i}" for i in range(50)]
    change = rng.uniform(0.01, 0.02, size=(50, 6))
    change[7] = 5.0
    change[7, 2] = 0.0
    figure = plots.layer_change_figure(names, [change], ["run 0"], [(3,)], max_layers=10)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 10 and "layer7" in labels
    assert "the 10 of 50 layers that changed most" in _texts(figure)
    # a layer that did not change is blank (masked), not the colour of the smallest change
    assert np.ma.is_masked(ax.get_images()[0].get_array())


def test_layer_figure_draws_names_as_plain_text():
    # "$x$" would be drawn as an italic x and "w$^{$" would fail to parse as mathtext
    names = ["$x$", "w$^{$", "tab\there"]
    figure = plots.layer_change_figure(names, [np.ones((3, 2))], ["run $0$"], [[]])
    assert plots.png_bytes(figure)[:4] == b"\x89PNG"
    labels = figure.axes[0].get_yticklabels()
    assert [label.get_text() for label in labels] == ["$x$", "w$^{$", "tab\\there"]
    assert not any(label.get_parse_math() for label in labels)
    assert figure.axes[0].get_title(loc="left") == "run $0$"


def _report_figures():
    """One figure of each kind the report draws, on small data."""
    X, runs = _walks()
    D = cdist(X, X)
    emb = classical_mds(D, 3)
    labels = [f"run {i} ({len(r)} ckpts)" for i, r in enumerate(runs)]
    curves = [
        plots.RunCurve(label, np.linalg.norm(np.diff(X[r], axis=0), axis=1), np.full(len(r) - 2, 0.5),
                       np.linalg.norm(X[r] - X[r[0]], axis=1), shifts=(4,))
        for label, r in zip(labels, runs, strict=True)
    ]  # fmt: skip
    names = [f"model.encoder.layers.{i}.self_attention.query.weight" for i in range(30)]
    changes = [np.random.default_rng(i).uniform(1e-4, 1e-1, (30, len(r) - 1)) for i, r in enumerate(runs)]
    return {
        "steps": plots.steps_figure(curves),
        "distances": plots.distance_heatmap_figure(D, runs, labels),
        "embedding_2d": plots.embedding_figure(
            emb.coordinates, emb.explained_variance_ratio, runs, labels, 2
        ),
        "embedding_3d": plots.embedding_figure(
            emb.coordinates, emb.explained_variance_ratio, runs, labels, 3
        ),
        "layers": plots.layer_change_figure(names, changes, labels, [(4,)] * len(runs)),
    }


@pytest.mark.parametrize("kind", ["steps", "distances", "embedding_2d", "embedding_3d", "layers"])
def test_png_is_the_whole_canvas_and_holds_every_label(kind):
    # PNGs are written without a bbox_inches="tight" pass: constrained layout must keep
    # every title, label and legend on the canvas, and the image is the canvas
    figure = _report_figures()[kind]
    width, height = _png_size(plots.png_bytes(figure))
    assert (width, height) == tuple(round(v * plots.DPI) for v in figure.get_size_inches())
    # laid out and measured at the PNG's resolution, as savefig does
    figure.set_dpi(plots.DPI)
    figure.draw_without_rendering()
    drawn = figure.get_tightbbox()
    canvas = figure.bbox_inches
    tolerance = 1 / plots.DPI
    assert drawn.x0 >= canvas.x0 - tolerance and drawn.y0 >= canvas.y0 - tolerance, (drawn, canvas)
    assert drawn.x1 <= canvas.x1 + tolerance and drawn.y1 <= canvas.y1 + tolerance, (drawn, canvas)


def test_png_bytes_lays_out_and_draws_each_figure_once(monkeypatch):
    # savefig alone draws a figure with a layout engine twice; the same pixels come from one draw
    from matplotlib.figure import Figure

    figures, expected = _report_figures(), {}
    for kind, figure in _report_figures().items():
        buffer = io.BytesIO()
        with mpl.rc_context(plots.PLAIN_TEXT):
            figure.savefig(buffer, format="png", dpi=plots.DPI)
        expected[kind] = _pixels(buffer.getvalue())
    draws = []
    draw = Figure.draw
    monkeypatch.setattr(
        Figure, "draw", lambda figure, renderer: draws.append(figure) or draw(figure, renderer)
    )
    for kind, figure in figures.items():
        png = plots.png_bytes(figure)
        assert draws == [figure], kind
        draws.clear()
        assert np.array_equal(_pixels(png), expected[kind]), kind
        # the figure keeps its layout engine and resolution
        assert figure.get_layout_engine() is not None and figure.dpi == 100


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def test_log_axes_are_labelled_in_plain_text():
    # figures are drawn with math parsing off, so a mathtext tick label such as
    # matplotlib's default log labels ("$\\mathdefault{10^{-3}}$") would show verbatim
    figures = _report_figures()
    for kind in ("steps", "layers"):
        figure = figures[kind]
        plots.png_bytes(figure)
        labels = [
            t.get_text()
            for ax in figure.axes
            for axis in (ax.xaxis, ax.yaxis)
            if axis.get_scale() == "log"
            for t in axis.get_ticklabels(which="both")
        ]
        assert any(labels), kind
        assert not [label for label in labels if "$" in label or "\\" in label], (kind, labels)


def test_run_colors_distinct():
    for n in (1, 5, 12, 30):
        colors = plots.run_colors(n)
        assert len(colors) == n == len(set(colors))


# html


def test_html_page_is_self_contained_and_escaped():
    png = plots.png_bytes(plots.steps_figure([plots.RunCurve("r", np.ones(3), np.ones(2), np.arange(4.0))]))
    page = html.render(
        "title <x>",
        "meta & more",
        [
            html.Section(
                "S",
                paragraphs=["a < b"],
                tables=[html.Table(["h"], [["<td>"]])],
                figures=[html.FigureBlock(png, "cap", "alt")],
            )
        ],
    )
    assert "title &lt;x&gt;" in page and "a &lt; b" in page and "&lt;td&gt;" in page
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(embedded) == png
    # nothing is loaded from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', page)


# atomic output folder


def test_output_folder_appears_only_when_complete(tmp_path):
    target = tmp_path / "report"
    with OutputFolder(target) as out:
        out.write_text("a.txt", "1")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_interrupted_output_leaves_nothing(tmp_path):
    target = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt), OutputFolder(target) as out:
        out.write_text("a.txt", "1")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_output_refused_unless_overwrite(tmp_path):
    target = tmp_path / "report"
    with OutputFolder(target) as out:
        out.write_text("old.txt", "old")
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        OutputFolder(target)
    # a failure while overwriting keeps the old report
    with pytest.raises(RuntimeError), OutputFolder(target, overwrite=True) as out:
        out.write_text("new.txt", "new")
        raise RuntimeError("plotting failed")
    assert (target / "old.txt").read_text() == "old"
    with OutputFolder(target, overwrite=True) as out:
        out.write_text("new.txt", "new")
    assert sorted(p.name for p in target.iterdir()) == [".wtraj-report", "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_output_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "report"
    target.write_text("x")
    with pytest.raises(FileExistsError, match="is not a folder"):
        OutputFolder(target, overwrite=True)


def test_writing_outside_a_with_block_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="with"):
        OutputFolder(tmp_path / "r").write_text("a", "b")
