"""One module per DVC stage: parse its params section, call the library, write artifacts."""
