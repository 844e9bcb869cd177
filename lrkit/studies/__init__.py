"""Studies built on the stages: the scout (scout) and the amateur ladder (ladder)."""
