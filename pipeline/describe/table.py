"""The table every description backend returns: one row per description."""

DESCRIPTION_COLUMNS = ["class_id", "class_name", "text", "source", "prompt_id", "sample_index"]
