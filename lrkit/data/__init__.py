"""Data: problems and their answers (answers, problems), the paper's benchmarks
(benchmarks), sampling records (records)."""
