"""Optuna's sampler for a spec's `sampler` (README, "Choosing the sampler")."""
from __future__ import annotations


def make_sampler(name: str, seed: int):
    """Optuna's sampler for the spec's `sampler` (README, "Choosing the sampler")."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "auto":
        return auto_sampler(seed)
    return optuna.samplers.TPESampler(seed=seed)


def auto_sampler(seed: int):
    """TPE while a suggestion costs under `SHARE` of a run's wall time, then random search.

    TPE re-reads every finished trial for each suggestion, so its cost grows with the sweep
    (benchmarks/scale.py measures it); against a GAN run of minutes that never matters, against
    runs of a fraction of a second it comes to dominate, and past thousands of trials its model
    adds little over sampling at random. The searcher reports both durations (`observe`)."""
    import optuna

    class AutoSampler(optuna.samplers.BaseSampler):
        SHARE, MIN_RUNS = 0.05, 20

        def __init__(self):
            self.tpe = optuna.samplers.TPESampler(seed=seed)
            self.random = optuna.samplers.RandomSampler(seed=seed + 1)
            self.current = self.tpe
            self.suggest_s = self.run_s = None
            self.runs = 0

        def observe(self, suggest_s: float | None = None, run_s: float | None = None):
            """Durations as they happen; returns a line to log when it switches."""
            def ema(old, new):
                return new if old is None else 0.9 * old + 0.1 * new

            if suggest_s is not None:
                self.suggest_s = ema(self.suggest_s, suggest_s)
            if run_s is not None:
                self.run_s = ema(self.run_s, run_s)
                self.runs += 1
            if (self.current is self.tpe and self.runs >= self.MIN_RUNS and self.suggest_s
                    and self.run_s and self.suggest_s > self.SHARE * self.run_s):
                self.current = self.random
                return (f"[gansweep] sampler auto: TPE's suggestions take "
                        f"{self.suggest_s * 1000:.0f} ms, over {self.SHARE:.0%} of a "
                        f"{self.run_s:.2f} s run: random search from here")
            return None

        def infer_relative_search_space(self, study, trial):
            return self.current.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.current.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.current.sample_independent(study, trial, param_name,
                                                   param_distribution)

        def before_trial(self, study, trial):
            self.current.before_trial(study, trial)

        def after_trial(self, study, trial, state, values):
            self.current.after_trial(study, trial, state, values)

    return AutoSampler()
