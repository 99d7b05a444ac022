"""The step cost fitted to label set 0 (200 pairs; prefine_core.credit), binned by the velocity a task's cost reads.

Run from the repository root: .venv/bin/python data/studies/2026-12-07-rl-stage/step_cost_by_velocity.py TASK OBS_INDEX
(HalfCheetah: index 8, the x velocity). Prints p (0: as safe as the safest labelled steps, 1: as unsafe as the most
unsafe) and the true cost per step, per velocity bin, over the benchmark's pool.
"""
import sys, numpy as np, torch
sys.path.insert(0,'.')
from prefine_core.bench import BenchConfig, build_pool, label_pairs, reference_and_behaviours
from prefine_core.credit import fit_step_cost, unsafe_score
torch.set_num_threads(1)
task=sys.argv[1]; vidx=int(sys.argv[2])
config=BenchConfig(task_id=task)
ref, beh = reference_and_behaviours(config, lambda m: None)
pool = build_pool({"reference": (ref, 1.0), **{k: (p, 1.0) for k, p in beh.items()}}, config)
pairs = label_pairs(pool, 200, 0)
model = fit_step_cost(pairs, seed=0)
obs=np.concatenate([c.trajectory.obs for c in pool]); act=np.concatenate([c.trajectory.actions for c in pool]); cost=np.concatenate([c.trajectory.costs for c in pool])
p=unsafe_score(model, torch.as_tensor(obs), torch.as_tensor(act)).numpy()
v=obs[:,vidx]
print('corr p,cost', np.corrcoef(p,cost)[0,1])
for lo in np.arange(np.percentile(v,1), np.percentile(v,99), (np.percentile(v,99)-np.percentile(v,1))/12):
    m=(v>=lo)&(v<lo+(np.percentile(v,99)-np.percentile(v,1))/12)
    if m.sum(): print(f"v {lo:6.2f} n {m.sum():6d} p {p[m].mean():.2f} true cost {cost[m].mean():.2f}")
