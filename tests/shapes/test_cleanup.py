"""Small-component clean-up: known areas and volumes of disjoint boxes decide what is kept."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from common.errors import ConfigError
from shapes.cleanup import component_sizes, remove_small_components


def _boxes(*specs: tuple[tuple[float, ...], tuple[float, ...]]) -> trimesh.Trimesh:
    """Disjoint axis-aligned boxes (extents, centre) concatenated into one mesh."""
    parts = [trimesh.creation.box(ext, trimesh.transformations.translation_matrix(c))
             for ext, c in specs]
    return trimesh.util.concatenate(parts)


def test_sizes_are_the_boxes_areas_and_volumes():
    mesh = _boxes(((1, 1, 1), (0, 0, 0)), ((0.1, 0.2, 0.3), (3, 0, 0)))
    np.testing.assert_allclose(np.sort(component_sizes(mesh, "area")),
                               [2 * (0.02 + 0.06 + 0.03), 6.0], rtol=1e-9)
    np.testing.assert_allclose(np.sort(component_sizes(mesh, "volume")), [0.006, 1.0], rtol=1e-9)


def test_a_speck_below_the_fraction_is_dropped_and_the_input_kept():
    mesh = _boxes(((1, 1, 1), (0, 0, 0)), ((0.1, 0.1, 0.1), (3, 0, 0)))  # area share 0.0099
    n_faces = len(mesh.faces)
    clean, info = remove_small_components(mesh, 0.02)
    assert info == {"components": 2, "kept": 1, "removed_fraction": pytest.approx(0.06 / 6.06)}
    assert clean.area == pytest.approx(6.0) and clean.is_watertight
    assert len(clean.vertices) == 8  # unreferenced vertices removed
    assert len(mesh.faces) == n_faces  # the raw mesh is untouched
    kept, info = remove_small_components(mesh, 0.005)
    assert info["kept"] == 2 and kept.area == pytest.approx(6.06)


def test_area_and_volume_measures_disagree_on_a_thin_plate():
    # a 1 x 1 x 0.01 plate (area 2.04, volume 0.01) and a 0.3 cube (area 0.54, volume 0.027)
    mesh = _boxes(((1, 1, 0.01), (0, 0, 0)), ((0.3, 0.3, 0.3), (2, 0, 0)))
    by_area, _ = remove_small_components(mesh, 0.5, "area")
    by_volume, _ = remove_small_components(mesh, 0.5, "volume")
    assert by_area.area == pytest.approx(2.04)
    assert by_volume.volume == pytest.approx(0.027)


def test_largest_is_always_kept_and_zero_keeps_all():
    mesh = _boxes(*(((0.5, 0.5, 0.5), (2.0 * i, 0, 0)) for i in range(3)))
    clean, info = remove_small_components(mesh, 0.9)  # every box holds a third
    assert info["kept"] == 1 and clean.area == pytest.approx(1.5)
    same, info = remove_small_components(mesh, 0.0)
    assert info["kept"] == 3 and len(same.faces) == len(mesh.faces)


def test_open_components_fall_back_to_area_for_volume():
    mesh = _boxes(((1, 1, 1), (0, 0, 0)), ((0.1, 0.1, 0.1), (3, 0, 0)))
    mesh.update_faces(np.arange(len(mesh.faces)) != 0)  # one face of the big box removed
    assert not mesh.is_watertight
    np.testing.assert_allclose(component_sizes(mesh, "volume"), component_sizes(mesh, "area"))


def test_bad_settings():
    mesh = trimesh.creation.box()
    with pytest.raises(ConfigError, match="min_fraction"):
        remove_small_components(mesh, 1.5)
    with pytest.raises(ConfigError, match="measure"):
        remove_small_components(mesh, 0.1, "faces")
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    assert remove_small_components(empty, 0.1)[1]["components"] == 0
