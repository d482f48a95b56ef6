"""Loading CDVAE CSVs and CIF folders; bad input gives a DataError naming file, row and field."""

from __future__ import annotations

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from common.errors import DataError
from materials.data import git_blob_sha1, load_structures

NACL = str(CifWriter(Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                               [[0, 0, 0], [0.5, 0.5, 0.5]])))
DISORDERED = str(CifWriter(Structure(Lattice.cubic(4.0), [{"Na": 0.5, "K": 0.5}, "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])))


def test_csv_rows_load_and_a_broken_row_is_named(tmp_path):
    f = tmp_path / "split.csv"
    pd.DataFrame({"material_id": [1, 2, 3], "cif": [NACL, "data_broken\n_cell_length_a 3",
                                                      NACL]}).to_csv(f)
    with pytest.raises(DataError, match=r"split.csv row 1.*'cif'.*does not parse"):
        load_structures(f)
    structures, report = load_structures(f, on_error="skip")
    assert len(structures) == 2 and len(report.skipped) == 1
    assert "row 1" in report.skipped[0][0]
    assert all(s.composition.reduced_formula == "NaCl" for s in structures)


def test_csv_without_cif_column(tmp_path):
    f = tmp_path / "x.csv"
    pd.DataFrame({"a": [1]}).to_csv(f)
    with pytest.raises(DataError, match="no 'cif' column"):
        load_structures(f)


def test_cif_folder_with_disordered_file(tmp_path):
    (tmp_path / "a.cif").write_text(NACL)
    (tmp_path / "b.cif").write_text(DISORDERED)
    with pytest.raises(DataError, match=r"b.cif.*disordered or partially occupied"):
        load_structures(tmp_path)
    structures, report = load_structures(tmp_path, on_error="skip")
    assert len(structures) == 1 and report.summary() == "kept 1, skipped 1"


def test_missing_path_and_wrong_items(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_structures(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="item 0 is a str"):
        load_structures(["NaCl"])


def test_perov5_val_loads_without_skips(shared_data):
    f = shared_data / "materials" / "perov_5" / "val.csv.gz"
    if not f.is_file():
        pytest.skip(f"{f} missing")
    structures, report = load_structures(f, limit=50)
    assert len(structures) == 50 and not report.skipped
    assert all(len(s) == 5 for s in structures)


def test_git_blob_sha1_known_value():
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
