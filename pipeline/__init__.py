"""fgvc: fine-grained classifiers trained partly from text, on top of frozen CLIP.

The library. It knows nothing of DVC, the command line or params.yaml: every function takes
explicit arguments. `stages/` parses params and calls in here.
"""
