"""The user's tools above server, worker and a3c: training on localhost, plots, benchmarks."""
