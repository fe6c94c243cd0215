"""Matterport's visualize.draw_rois, draw_box, display_table and display_weight_stats."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from mrcnn import visualize


def test_draw_box_burns_a_two_pixel_frame():
    image = np.zeros((10, 12, 3), np.uint8)
    out = visualize.draw_box(image, (2, 3, 7, 9), (255, 0, 0))
    assert out is image
    red = image[:, :, 0] == 255
    expected = np.zeros((10, 12), bool)
    expected[2:4, 3:9] = expected[7:9, 3:9] = True
    expected[2:7, 3:5] = expected[2:7, 9:11] = True
    np.testing.assert_array_equal(red, expected)
    assert not image[:, :, 1:].any()


def test_draw_rois_draws_only_positive_rois_up_to_the_limit(tmp_path):
    image = np.full((60, 80, 3), 128, np.uint8)
    rois = np.array([[5, 5, 20, 30], [10, 40, 50, 70], [0, 0, 10, 10], [30, 10, 55, 35]])
    refined = rois + 2
    class_ids = np.array([1, 0, 2, 1])
    figure = visualize.draw_rois(image, rois, refined, None, class_ids, ["BG", "a", "b"], limit=2)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert ax.get_title().startswith("Positive ROIs: 3, negative ROIs: 1")
    captions = sorted(t.get_text() for t in ax.texts)
    assert len(captions) == 2 and set(captions) <= {"a", "b"}
    path = tmp_path / "rois.png"
    visualize.draw_rois(image, rois, refined, None, class_ids, ["BG", "a", "b"], path=path)
    assert path.stat().st_size > 0


def test_display_table_prints_outside_notebooks(capsys):
    markup = visualize.display_table([["name", "value"], ["a<b", 3]])
    assert (
        markup
        == "<table><tr><td>name</td><td>value</td></tr><tr><td>a&lt;b</td><td>3</td></tr></table>"
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["a<b", "3"]


def test_display_weight_stats_flags_dead_and_overflowing_tensors(capsys):
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[1].weight.fill_(5000.0)
    markup = visualize.display_weight_stats(net)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert rows[0].split()[:2] == ["WEIGHT", "NAME"]
    assert "0.weight  *** dead?" in rows[1]
    assert "1.weight  *** Overflow?" in rows[3]
    assert "(1, 3)" in rows[3] and "+5000.0000" in rows[3]
    assert markup.count("<tr>") == 5
