"""Diagnostic beside the step-credit study (never used to choose): the fitted step cost on label set 60 (200 pairs)
ordering label set 61's pairs, and its p against the true per-step cost of the labelled clips.

    .venv/bin/python data/studies/2026-12-01-step-credit/diagnostic.py TASK_ID
"""
import sys, time, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
torch.set_num_threads(1)
from prefine_core.bench import BenchConfig, build_pool, label_pairs, reference_and_behaviours
from prefine_core.credit import fit_step_cost, unsafe_score, label_accuracy
task = sys.argv[1]
config = BenchConfig(task_id=task)
reference, behaviours = reference_and_behaviours(config, lambda m: None)
pool = build_pool({"reference": (reference, 1.0), **{k: (p, 1.0) for k, p in behaviours.items()}}, config)
pairs = label_pairs(pool, 200, 60)
test = label_pairs(pool, 200, 61)
t = time.time(); model = fit_step_cost(pairs, seed=60); print("fit s", round(time.time()-t,1))
print("train acc", label_accuracy(model, pairs), "test acc", label_accuracy(model, test))
clips = {id(c): c for pr in pairs for c in pr}.values()
P, C = [], []
for c in clips:
    P.append(unsafe_score(model, torch.as_tensor(c.obs), torch.as_tensor(c.actions)).numpy()); C.append(c.costs)
P, C = np.concatenate(P), np.concatenate(C)
print("corr", np.corrcoef(P, C)[0,1], "p|cost>0", P[C>0].mean(), "p|cost=0", P[C==0].mean(), "frac costly", (C>0).mean())
