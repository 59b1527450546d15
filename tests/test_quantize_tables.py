"""Code tables: ideal uniform values, nearest-value quantization (vs brute force), measured non-uniform tables
used unchanged, clipping, validation."""
import numpy as np
import pytest

from kchip.quantize.tables import CodeTable, from_cells_table


def test_ideal_table_values():
    t = CodeTable.ideal("gm", 3, 7e-6)
    assert t.codes == list(range(-7, 8))
    assert np.allclose(t.values, [c * 1e-6 for c in range(-7, 8)])
    assert t.unit == "S" and t.code_range() == (-7, 7)


def test_quantize_nearest_matches_brute_force():
    rng = np.random.default_rng(0)
    codes = [-5, -2, 0, 1, 3, 9]
    values = [-4.0, -1.1, 0.0, 0.3, 1.7, 2.2]          # non-uniform, monotone
    t = CodeTable.from_measured("ibias", 4, True, codes, values, "measured:test")
    assert t.codes == codes and t.values == values        # used unchanged
    x = rng.uniform(-6, 4, 500)
    q = t.quantize(x)
    brute = np.asarray(values)[np.argmin(np.abs(x[:, None] - np.asarray(values)[None]), axis=1)]
    assert np.allclose(q["values"], brute)
    assert all(t.value(c) == v for c, v in zip(q["codes"], q["values"]))
    assert q["clipped"].sum() == ((x < -4.0) | (x > 2.2)).sum()


def test_measured_table_unsorted_input_is_sorted_by_code():
    t = CodeTable.from_measured("slope", 2, True, [3, -3, 0], [2.9, -3.1, 0.01], "m")
    assert t.codes == [-3, 0, 3] and t.values == [-3.1, 0.01, 2.9]


@pytest.mark.parametrize("codes,values,field", [
    ([0, 1, 2], [0.0, 2.0, 1.0], "values[2]"),           # not monotone
    ([0, 1, 99], [0.0, 1.0, 2.0], "codes[2]"),           # out of the 3-bit width
    ([0, 1, 1], [0.0, 1.0, 2.0], "codes[2]"),            # duplicate
])
def test_invalid_tables_refused(codes, values, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        CodeTable("gm", 3, True, codes, values)


def test_roundtrip_dict():
    t = CodeTable.ideal("offset", 5, 1.5)
    assert CodeTable.from_dict(t.to_dict()) == t


def test_from_cells_table_mirrors_magnitude_codes():
    class CP:  # duck type of kchip.cells.tables.CodeParam
        def __init__(self, c, v):
            self.codes, self.values = np.asarray(c), np.asarray(v)

    class CT:
        cell, corner, units, meta = "relu_diff", "tt", {"gain": "A/V", "bias": "A"}, {"bits": 2}
        params = {"gain": CP([0, 1, 2, 3], [0.0, 1e-6, 2.1e-6, 2.9e-6]), "bias": CP([-1, 0, 1], [-1e-9, 0, 1e-9])}

    tabs = from_cells_table(CT())
    g = tabs["relu_diff.gain"]
    assert g.codes == [-3, -2, -1, 0, 1, 2, 3] and g.values[-1] == 2.9e-6 and g.values[0] == -2.9e-6
    assert tabs["relu_diff.bias"].values == [-1e-9, 0.0, 1e-9]


def test_from_cells_table_refuses_non_programmable_parameter():
    class CP:
        def __init__(self, c, v):
            self.codes, self.values = np.asarray(c), np.asarray(v)

    class CT:  # slope nearly constant over the codes: not a programmable slope
        cell, corner, units, meta = "tanh_diff", "tt", {"slope": "1/V"}, {}
        params = {"slope": CP([0, 1, 2], [12.1, 12.7, 12.5])}

    with pytest.raises(ValueError, match="'slope' does not increase with its code"):
        from_cells_table(CT())


def test_from_cells_table_offset_binary_bias_kept_unsigned():
    class CP:
        def __init__(self, c, v):
            self.codes, self.values = np.asarray(c), np.asarray(v)

    class CT:  # relu_diff bias DAC: ocode 0..15 -> (ocode - 8) * I_ub
        cell, corner, units, meta = "relu_diff", "tt", {"bias": "A"}, {"bits": 4, "obits": 4}
        params = {"bias": CP(list(range(16)), [(o - 8) * 1e-8 for o in range(16)])}

    t = from_cells_table(CT())["relu_diff.bias"]
    assert t.signed is False and t.codes == list(range(16)) and t.values[8] == 0.0
    q = t.quantize(np.array([-3.1e-8, 2.6e-8]))
    assert list(q["codes"]) == [5, 11]
