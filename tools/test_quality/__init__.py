"""Measures of the test suite itself: planted bugs, mutation score, fuzzing, the fault drill."""
