"""The Prometheus papers' meta-evaluation sets, one module each holding its ``SPEC``
(:class:`~prometheus_reward.metaeval.spec.BenchmarkSpec`), registered in
:data:`prometheus_reward.registry.BENCHMARKS`.

Example:
    >>> from prometheus_reward.registry import BENCHMARKS
    >>> BENCHMARKS.names()
    ('vicuna', 'mt_bench', 'hhh', 'autoj', 'custom')
"""

# Commit becd223 ("Update train and eval folder", 2024-05-02) moved the sets to eval/benchmark/data/;
# no later commit on main changed them (same blobs through dcfb442, 2025-04-24). The bytes match the
# copies the papers' numbers were measured on.
PROMETHEUS_EVAL_COMMIT = "becd223d624896a5383e5dd9b766d740261a80f2"
# The two Prometheus 2 sizes, whose published figures every set reports.
P2_7B, P2_8X7B = "Prometheus-2-7B", "Prometheus-2-8x7B"
