"""Benchmarks and the performance-regression gate (`tritonsqrt bench`, `tritonsqrt perfcheck`).

cases: the named workloads; providers: every implementation timed; timing, floor: how;
runner: rows of time, error and floor; table, plots: output; costs, compare, gate: the gate;
records: files and machine details. docs/perf.md explains the figures.
"""
