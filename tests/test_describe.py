import pandas as pd

from pipeline.describe import DESCRIPTION_COLUMNS
from pipeline.describe.attributes import attribute_phrase, describe_from_attributes


def test_attribute_phrases_read_like_english():
    assert attribute_phrase("has_wing_color::blue") == ("wing_color", "blue wings")
    assert attribute_phrase("has_primary_color::red") == ("primary_color", "red plumage")
    assert attribute_phrase("has_head_color::grey") == ("head_color", "a grey head")
    assert attribute_phrase("has_upperparts_color::brown") == ("upperparts_color", "brown upperparts")
    assert attribute_phrase("has_bill_shape::hooked") == ("bill_shape", "a hooked-shaped bill")
    assert attribute_phrase("has_breast_pattern::striped") == ("breast_pattern", "a striped breast")
    assert attribute_phrase("has_size::small_(5_-_9_in)") == ("size", "a small (5 - 9 in) size")


def test_descriptions_use_each_class_top_attributes():
    attributes = pd.DataFrame({
        "class_id": [1, 2],
        "has_wing_color::blue": [90.0, 10.0], "has_wing_color::red": [10.0, 80.0],
        "has_bill_shape::cone": [70.0, 30.0], "has_bill_shape::long": [30.0, 20.0],
    })
    classes = pd.DataFrame({"class_id": [1, 2], "class_name": ["Blue Finch", "Red Warbler"]})
    table = describe_from_attributes(attributes, classes, samples_per_class=3, traits_per_sample=2,
                                     min_percent=50, seed=0)
    assert list(table.columns) == DESCRIPTION_COLUMNS
    assert table.groupby("class_id").size().tolist() == [3, 3]
    first = table[table["class_id"] == 1]["text"]
    assert first.str.contains("Blue Finch").all() and first.str.contains("blue wings").all()
    assert first.str.contains("a cone-shaped bill").all()
    second = table[table["class_id"] == 2]["text"]
    assert second.str.contains("red wings").all() and not second.str.contains("bill").any()
    assert table["sample_index"].tolist() == [0, 1, 2, 0, 1, 2]
    assert (table["source"] == "attributes").all()
    again = describe_from_attributes(attributes, classes, samples_per_class=3, traits_per_sample=2,
                                     min_percent=50, seed=0)
    pd.testing.assert_frame_equal(table, again)


def test_real_cub_attributes_describe_all_200_classes(shared_data):
    from pipeline.data.cub import read_cub_attributes, read_cub_classes
    cub = shared_data / "CUB_200_2011_metadata"
    table = describe_from_attributes(read_cub_attributes(cub), read_cub_classes(cub),
                                     samples_per_class=2, traits_per_sample=4, min_percent=30, seed=0)
    assert table["class_id"].nunique() == 200 and len(table) == 400
    assert table["text"].str.len().min() > 40
