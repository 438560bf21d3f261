"""The machinery every job shares, with no job's knowledge in it (issue 15's ``transforms/core/``)."""
