"""Extensions written outside the library, as a user or a later issue would add them: each is
one module that registers itself (tests/test_extending.py runs them through the real stages)."""
