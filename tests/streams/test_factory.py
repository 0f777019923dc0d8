"""The streams wing: the variant table, the paste window handed to the native reader, the one
check of the paste values, and the factory's choice of reader."""
from __future__ import annotations

import numpy as np
import pytest

from dali_cmo.data.datasets import ArrayDataset, LongTailDataset
from dali_cmo.data.sampling import PermutationSampler, WeightedSampler
from dali_cmo.streams import (VARIANTS, NativeStreams, PasteSchedule, PythonStreams,
                              StreamSettings, make_streams)

SAMPLERS = {"P": PermutationSampler, "Q": WeightedSampler}


@pytest.fixture
def files(tmp_path):
    """Ten listed files of three classes (nothing is read: the streams are only built)."""
    labels = [0] * 6 + [1] * 3 + [2]
    return LongTailDataset(tmp_path, [f"{i}.jpg" for i in range(10)], labels, ["a", "b", "c"],
                           "ten")


def settings(**schedule) -> StreamSettings:
    return StreamSettings(batch_size=4, seed=5,
                          schedule=PasteSchedule(**{"epochs": 6, "start": 1, "end": 1, **schedule}))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("reader", ["native", "python"])
def test_each_variant_reads_the_samplers_of_the_table(files, variant, reader):
    pair = make_streams(files, variant, settings(), reader)
    background_kind, foreground_kind = VARIANTS[variant]
    assert type(pair.background.sampler) is SAMPLERS[background_kind]
    assert pair.background.schedule is None
    if foreground_kind is None:
        assert pair.foreground is None
    else:
        assert type(pair.foreground.sampler) is SAMPLERS[foreground_kind]
        assert pair.foreground.schedule == settings().schedule
        assert (pair.background.sampler.stream, pair.foreground.sampler.stream) == \
            ("background", "foreground")


def test_the_factory_picks_the_python_sources_only_where_the_reader_cannot_serve(files):
    pixels = ArrayDataset(files.root, files.files, files.labels, files.class_names, "pixels",
                          images=np.zeros((10, 8, 8, 3), np.uint8))
    cases = {"files, native": make_streams(files, "cmo", settings()),
             "files, python": make_streams(files, "cmo", settings(), "python"),
             "pixels, native": make_streams(pixels, "cmo", settings()),
             "short epochs, native": make_streams(files, "cmo", settings(),
                                                  max_batches_per_epoch=2)}
    assert {case: type(pair) for case, pair in cases.items()} == {
        "files, native": NativeStreams, "files, python": PythonStreams,
        "pixels, native": PythonStreams, "short epochs, native": PythonStreams}
    assert [pair.counts_epochs for pair in cases.values()] == [True, False, False, False]
    assert cases["short epochs, native"].background.batches_per_epoch() == 2
    with pytest.raises(ValueError) as error:
        make_streams(files, "cmo", settings(), "dali")
    assert str(error.value) == "reader must be one of native, python; got 'dali'"


@pytest.mark.parametrize("epochs, start, end", [(8, 3, 3), (6, -1, 0), (6, 0, 1), (10, 2, 5),
                                                (1, -1, 0)])
def test_the_native_reader_gets_the_window_computed_once(files, epochs, start, end):
    schedule = PasteSchedule(epochs, start, end, probability=0.25, per_sample=True)
    first = start + 1  # the reference pastes in start < epoch < epochs - end (from 0)
    pasting = [e for e in range(epochs) if start < e < epochs - end]
    arguments = make_streams(files, "cmo", StreamSettings(4, 5, schedule)) \
        .foreground.reader_arguments()
    assert arguments["coin_epochs"] == [max(first, 0), max(epochs - end, first, 0)]
    assert list(range(*arguments["coin_epochs"])) == pasting
    assert (arguments["coin_probability"], arguments["coin_per_sample"]) == (0.25, True)
    assert [schedule.flags(e, 0, 64).any() for e in range(epochs)] == \
        [e in pasting for e in range(epochs)]


def test_the_paste_values_are_checked_once_with_what_would_work():
    with pytest.raises(ValueError) as error:
        PasteSchedule(6, probability=1.5)
    assert str(error.value) == "probability must lie in [0, 1]; got 1.5"
    with pytest.raises(ValueError) as error:
        PasteSchedule(3, start=1, end=1, probability=0.5)
    assert str(error.value) == (
        "cmo_start 1 / cmo_end 1: the CMO window 'start < epoch < epochs - end' (epochs=3, "
        "counted from 0) leaves no augmented epoch (cmo_start -1 with cmo_end 0 pastes in every "
        "epoch)")
    assert not PasteSchedule(3, start=1, end=1, probability=0.0).window  # nothing to paste


def test_a_variant_without_foregrounds_never_pastes_but_its_probability_is_checked():
    assert not PasteSchedule.for_variant("none", 3, start=1, end=1).window  # no window: fine
    plain = PasteSchedule.for_variant("none", 6, start=-1, end=0, probability=1.0)
    assert not plain.pastes and plain.pasting_epochs == range(0)
    assert not any(plain.flags(e, 0, 8).any() for e in range(6))
    cmo = PasteSchedule.for_variant("cmo", 6, start=-1, end=0, probability=1.0)
    assert cmo.pastes and cmo.pasting_epochs == range(0, 6)
    assert all(cmo.flags(e, 0, 8).all() for e in range(6))
    with pytest.raises(ValueError) as error:
        PasteSchedule.for_variant("ros", 6, probability=1.5)
    assert str(error.value) == "probability must lie in [0, 1]; got 1.5"
