"""Class descriptions: the text that stands in for images of a class.

Every backend returns the same table, `DESCRIPTION_COLUMNS`: one row per description.
"""

DESCRIPTION_COLUMNS = ["class_id", "class_name", "text", "source", "prompt_id", "sample_index"]
