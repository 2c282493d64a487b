"""System metrics sampled where the training runs (the Ray worker, or this process in-process), with
MLflow's own monitors, so the numbers and names are the ones MLflow's `log_system_metrics` would log.

The MLflow run of a concept is opened only after its checkpoint is committed (crash safety), so the
worker cannot stream into it: it attaches the means since the previous report to each reported row,
as `system/<name>`, and the registration logs them at the row's step.
"""

from __future__ import annotations

PREFIX = "system/"


class SystemSampler:
    """CPU utilisation and memory (and GPU, where MLflow's GPU monitor can read one) since the last call."""

    def __init__(self):
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor

        self.monitors = [CPUMonitor()]
        try:
            from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor

            self.monitors.append(GPUMonitor())
        except Exception:  # no pynvml or no NVIDIA GPU: nothing to sample
            pass
        self.sample()  # psutil's CPU percentage counts from the previous call: start the clock now

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.monitors:
            m.collect_metrics()
            out |= {PREFIX + k: float(v) for k, v in m.aggregate_metrics().items()}
            m.clear_metrics()
        return out


def with_system_metrics(report):
    """Wrap a report callback so that each row also carries the system metrics since the previous one."""
    if report is None:
        return None
    sampler = SystemSampler()
    return lambda row: report({**row, **sampler.sample()})
