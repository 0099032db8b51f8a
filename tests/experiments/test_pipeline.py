"""`run_arms`: one GRPO run per arm from the same start, on the real trainer and a real (test) env."""

from turngym.experiments import run_arms


def test_each_arm_trains_from_its_start_with_its_own_fields(lock_id, tmp_path, one_thread):
    from turngym.agents.backends.tiny import tiny_policy

    policy = tiny_policy(seed=0, hidden=32, layers=1, max_new_tokens=4)
    init = {k: v.clone() for k, v in policy.model.state_dict().items()}
    started, saved = [], []

    def start(name):
        started.append(name)
        policy.model.load_state_dict(init)
        return policy

    def report(name, trainer, records):
        return {"lr": trainer.config.lr, "steps": [r["step"] for r in records if "pg_loss" in r]}

    base = {"env_id": lock_id, "steps": 1, "tasks_per_step": 1, "group_size": 2, "max_turns": 2, "lr": 1e-3}
    base |= {"max_new_tokens": 4, "progress": False, "tensorboard": False, "plot": False}
    arms = {"slow": {"lr": 1e-6}, "fast": {}}
    res = run_arms(start, arms, base, tmp_path, report=report, on_arm=lambda n, r: saved.append((n, r)))
    assert started == ["slow", "fast"] and list(res) == ["slow", "fast"]
    assert res["slow"]["lr"] == 1e-6 and res["fast"]["lr"] == 1e-3  # the arm's fields over the shared ones
    assert all(r["steps"] == [1] and r["seconds"] > 0 for r in res.values())
    assert saved == list(res.items())
    assert all((tmp_path / n / "metrics.jsonl").is_file() for n in arms)
