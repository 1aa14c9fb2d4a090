"""Datasets: the procedurally generated demo world and the readers of the real layouts."""
